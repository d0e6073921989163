export { Nexus, TRANSIENT_CODES } from "./client.js";
export type {
  CallOptions,
  Connection,
  ConnectionError,
  ConnectionFetchOptions,
  ConnectionPage,
  FetchLike,
  ListConnectionsInput,
  NexusOptions,
  ReconnectInput,
  RequestConnectionInput,
  RequestConnectionResult,
  RequestOptions,
  RetryOptions,
  WaitOptions,
} from "./client.js";
export { Credentials } from "./credentials.js";
export { WebhookEventTypes, WebhookVerificationError, parseWebhookEvent, verifyWebhook } from "./webhooks.js";
export type { ConnectionEventData, VerifyWebhookOptions, WebhookEvent, WebhookEventType } from "./webhooks.js";
export type { Strategy, TokenResponse } from "./credentials.js";
export { applyCredentials, hashBody } from "./apply.js";
export type { ApplyOptions, OutgoingRequest } from "./apply.js";
export { signV4, sha256Hex, EMPTY_PAYLOAD_HASH, UNSIGNED_PAYLOAD } from "./sigv4.js";
export type { AwsCredentials, SigV4Request, SigV4Result } from "./sigv4.js";
export {
  AttentionRequiredError,
  AuthenticationError,
  ConfigurationError,
  ForbiddenError,
  NetworkError,
  NexusError,
  NotActiveError,
  NotFoundError,
  RateLimitedError,
  RequestError,
  TimeoutError,
  UnavailableError,
} from "./errors.js";
export type { Problem } from "./errors.js";
