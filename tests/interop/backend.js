// A Backstage backend from npm with one small plugin, `tsplug`, for the interop test
// (tests/tests/interop.rs). Run: node backend.js --config <file>.
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendPlugin, coreServices } = require('@backstage/backend-plugin-api');
const express = require('express');

const tsplug = createBackendPlugin({
  pluginId: 'tsplug',
  register(env) {
    env.registerInit({
      deps: {
        http: coreServices.httpRouter,
        auth: coreServices.auth,
        httpAuth: coreServices.httpAuth,
        discovery: coreServices.discovery,
      },
      async init({ http, auth, httpAuth, discovery }) {
        const router = express.Router();
        // Who called: the principal Backstage made of the request's token.
        router.get('/whoami', async (req, res) => {
          const credentials = await httpAuth.credentials(req);
          res.json(credentials.principal);
        });
        // Calls the Rust plugin `rusty` with this plugin's token.
        router.get('/call-rust', async (_req, res) => {
          const { token } = await auth.getPluginRequestToken({
            onBehalfOf: await auth.getOwnServiceCredentials(),
            targetPluginId: 'rusty',
          });
          const base = await discovery.getBaseUrl('rusty');
          const response = await fetch(`${base}/whoami`, {
            headers: { authorization: `Bearer ${token}` },
          });
          res.json({ status: response.status, body: await response.json() });
        });
        http.use(router);
        http.addAuthPolicy({ path: '/call-rust', allow: 'unauthenticated' });
      },
    });
  },
});

const backend = createBackend();
backend.add(tsplug);
backend.start();
