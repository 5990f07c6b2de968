// A real OpenID provider (oidc-provider) for the end-to-end tests, on loopback.
// Usage: node provider.mjs <config.json>, where config.json is
//   {"port": 1234, "jwks": {"keys": [private JWKs]}, "alg": "ES256",
//    "clients": [{"client_id": "...", "client_secret": "...", "scope": "tasks admin"}],
//    "resource_scopes": "tasks admin", "ttl": 600, "registration": false}
// Access tokens: client-credentials grant with a resource indicator (RFC 8707), issued
// as JWTs (RFC 9068) whose `aud` is the resource. Prints "ready <issuer>" when listening.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  jwks: config.jwks,
  clientDefaults: { id_token_signed_response_alg: config.alg ?? 'ES256' }, // the only key type it has
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: c.scope,
  })),
  scopes: ['openid', 'offline_access', ...config.resource_scopes.split(' ')],
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: Boolean(config.registration) }, // dynamic client registration (RFC 7591)
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: config.resource_scopes,
        audience: resource,
        accessTokenTTL: config.ttl ?? 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: config.alg ?? 'ES256' } },
      }),
    },
  },
});
provider.proxy = false;
provider.use(async (ctx, next) => {
  await next();
  console.log(`request ${ctx.method} ${ctx.path} ${ctx.status}`); // which endpoints a client used
});
provider.on('registration_create.error', (_ctx, err) => console.log(`registration error ${err.message} ${err.error_description ?? ''}`));
const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
