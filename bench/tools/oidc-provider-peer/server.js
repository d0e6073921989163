// node-oidc-provider (https://github.com/panva/node-oidc-provider), in memory, one process: the peer that Nexus is
// measured beside in bench/client-credentials.sh and bench/introspection.sh (issue #20).
//   PORT=18196 node server.js          prints "ready" once it listens on 127.0.0.1:PORT
// One confidential client (client_secret_basic, client credentials only, scope "read"). Three resource servers
// (RFC 8707 resource indicators, which oidc-provider needs to issue JWT access tokens):
//   urn:bench:es256   JWT access tokens signed ES256
//   urn:bench:rs256   JWT access tokens signed RS256 (2048-bit key)
//   urn:bench:opaque  opaque access tokens, kept in the in-memory adapter: oidc-provider does not store its JWT
//                     access tokens, so only these can be introspected (RFC 7662), the peer's introspection path
// Keys are generated at start; the default in-memory adapter keeps tokens. Nothing here is for production.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 18196);
const issuer = `http://127.0.0.1:${port}`;
const jwk = (type, options) => generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
const keys = [
  { ...jwk('ec', { namedCurve: 'P-256' }), alg: 'ES256', use: 'sig', kid: 'es256' },
  { ...jwk('rsa', { modulusLength: 2048 }), alg: 'RS256', use: 'sig', kid: 'rs256' },
];
const resources = {
  'urn:bench:es256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'urn:bench:rs256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  'urn:bench:opaque': { accessTokenFormat: 'opaque' },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: process.env.CLIENT_SECRET || 'bench-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read',
  }],
  jwks: { keys },
  scopes: ['read'],
  clientDefaults: { id_token_signed_response_alg: 'RS256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf || 'urn:bench:es256',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const info = resources[resource];
        if (!info) throw new Provider.errors.InvalidTarget();
        return { scope: 'read', audience: resource, accessTokenTTL: 3600, ...info };
      },
    },
  },
  ttl: { ClientCredentials: 3600 },
});

provider.listen(port, '127.0.0.1');
console.log('ready');
