// A real OpenID Connect provider on loopback for tests/test_jit_oidc.py: the npm package
// oidc-provider (pinned in package.json), configured with the test's clients and signing keys,
// serving discovery, the JWKS and the authorization code flow (with PKCE).
//
//   node server.mjs --keys KEYS.json [--port N] [--id-token-ttl SECONDS]
//
// KEYS.json is a private JWKS; the first key signs. On start it prints one JSON line,
// {"issuer": ..., "port": ...}, on stdout. The login and consent interactions are JSON:
//
//   GET  /interaction/:uid          -> {"uid", "prompt", "params"}
//   POST /interaction/:uid/login    {"login": "<account id>"}   -> 303 back to the provider
//   POST /interaction/:uid/confirm  {}                          -> 303 back to the provider
//
// Test control (loopback only, never part of a real provider):
//   PUT /_test/accounts/:id   {claims}  the account's claims (read at each token issued)
//   GET /_test/stats                    {"jwks_requests": N}
import http from 'node:http';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

function arg(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const keys = JSON.parse(readFileSync(arg('--keys'), 'utf8'));
const wantedPort = Number(arg('--port', '0'));
const idTokenTtl = Number(arg('--id-token-ttl', '600'));

const accounts = new Map();
let jwksRequests = 0;

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

const server = http.createServer();
server.listen(wantedPort, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'gateway-app',
        client_secret: 'gateway-app-secret',
        redirect_uris: ['http://127.0.0.1:9/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
      {
        // another relying party of the same provider: its tokens are not for the gateway
        client_id: 'other-app',
        client_secret: 'other-app-secret',
        redirect_uris: ['http://127.0.0.1:9/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: keys,
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name', 'given_name', 'family_name', 'nickname', 'locale'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    // the scopes' claims go into the ID token itself (not only to userinfo)
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: { IdToken: idTokenTtl, AccessToken: 600, AuthorizationCode: 60, Interaction: 600,
           Session: 600, Grant: 600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      if (!accounts.has(id)) return undefined;
      return {
        accountId: id,
        async claims() {
          return { ...accounts.get(id), sub: id };
        },
      };
    },
  });

  provider.use(async (ctx, next) => {
    const path = ctx.path;
    if (path === provider.pathFor('jwks')) jwksRequests += 1;

    if (path === '/_test/stats' && ctx.method === 'GET') {
      ctx.body = { jwks_requests: jwksRequests };
      return;
    }
    let m = path.match(/^\/_test\/accounts\/([^/]+)$/);
    if (m && ctx.method === 'PUT') {
      accounts.set(decodeURIComponent(m[1]), await readJson(ctx.req));
      ctx.status = 204;
      return;
    }

    m = path.match(/^\/interaction\/([^/]+)(\/login|\/confirm)?$/);
    if (!m) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== m[1]) ctx.throw(400, 'interaction mismatch');
    const { prompt, params, session } = details;
    if (!m[2] && ctx.method === 'GET') {
      ctx.body = { uid: details.uid, prompt: { name: prompt.name, reasons: prompt.reasons },
                   params: { client_id: params.client_id, scope: params.scope } };
      return;
    }
    if (ctx.method !== 'POST') ctx.throw(405);
    const body = await readJson(ctx.req);
    let result;
    if (m[2] === '/login') {
      if (prompt.name !== 'login') ctx.throw(400, `expected prompt login, not ${prompt.name}`);
      if (!accounts.has(body.login)) ctx.throw(401, 'unknown account');
      result = { login: { accountId: body.login } };
    } else {
      if (prompt.name !== 'consent') ctx.throw(400, `expected prompt consent, not ${prompt.name}`);
      const grant = new provider.Grant({ accountId: session.accountId,
                                         clientId: params.client_id });
      grant.addOIDCScope(params.scope);
      result = { consent: { grantId: await grant.save() } };
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result,
                                                { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();  // the gateway's keep-alive connections too
  });
}
