// Package nexus is the Go SDK of Nexus, the OAuth platform and token vault.
//
// An application stores one thing per user and provider, a connection id. With this package, calling the
// provider's API with that connection is as short as calling it with a hard-coded token:
//
//	client, err := nexus.NewClient() // NEXUS_URL and NEXUS_API_KEY from the environment
//	github := client.HTTPClient(connectionID)
//	resp, err := github.Get("https://api.github.com/user")
//
// The http.Client above carries a Transport that fetches the connection's credentials from Nexus (cached until
// shortly before they expire, one fetch shared by every concurrent caller), applies them the way the provider
// expects (OAuth 2.0 Bearer, an API key in a header or the query, HTTP Basic, or an AWS Signature Version 4
// computed locally) and, when the provider answers 401, has Nexus refresh the token and sends the request once more
// if it can be replayed. With ViaBridge the request goes through the Nexus Bridge instead and the credential never
// reaches the application.
//
// Errors are typed: *AttentionRequiredError (the user must connect again; never retried), *NotActiveError,
// *NotFoundError, *ForbiddenError, *AuthenticationError, *RateLimitedError and *UnavailableError (both carry
// Retry-After; idempotent calls are retried before they surface, per RetryPolicy: at most 3 attempts, 250ms then
// 500ms apart or after the Retry-After, which is not waited for when longer than 10s), and *APIError for any other
// problem. Use errors.As. No error, credential or client prints a secret, whatever the fmt verb.
package nexus
