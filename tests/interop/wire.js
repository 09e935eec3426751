// A Backstage backend from npm with one plugin, `wire`, shaped like the Rust plugin of the wire
// conformance test (tests/tests/it/conformance.rs): the same routes, the same answers, so that
// every difference on the wire is the framework's. Run: node wire.js --config <file>.
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendPlugin, coreServices } = require('@backstage/backend-plugin-api');
const { InputError, NotFoundError } = require('@backstage/errors');
const express = require('express');
// As Backstage's plugins route: a rejected handler goes on to the error handler.
const Router = require('express-promise-router');

const wire = createBackendPlugin({
  pluginId: 'wire',
  register(env) {
    env.registerInit({
      deps: { http: coreServices.httpRouter, httpAuth: coreServices.httpAuth },
      async init({ http, httpAuth }) {
        const router = Router();
        // The Rust backend's default body limit (backend.server.maxRequestBodySize).
        router.use(express.json({ limit: '1mb' }));
        router.get('/health', (_req, res) => {
          res.json({ status: 'ok' });
        });
        router.get('/items', async (req, res) => {
          await httpAuth.credentials(req);
          res.json([{ id: 1, name: 'first' }]);
        });
        router.post('/items', async (req, res) => {
          await httpAuth.credentials(req);
          const name = req.body?.name;
          if (typeof name !== 'string' || name.trim() === '') {
            throw new InputError('name must not be empty');
          }
          res.status(201).json({ id: 2, name: name.trim() });
        });
        router.get('/items/:id', async (req, res) => {
          await httpAuth.credentials(req);
          throw new NotFoundError(`no item ${req.params.id}`);
        });
        router.get('/big', async (_req, res) => {
          res.json({ items: Array.from({ length: 100 }, (_, i) => ({ id: i, name: `item ${i}` })) });
        });
        http.use(router);
        http.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
        http.addAuthPolicy({ path: '/big', allow: 'unauthenticated' });
      },
    });
  },
});

const backend = createBackend();
backend.add(wire);
backend.start();
