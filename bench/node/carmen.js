// The benchmark's Node contestant: Backstage's backend from npm with `carmen` written as a
// TypeScript plugin author would, the same routes and SQL as the Rust example's benchmarked ones:
// `/health` (unauthenticated, logs "PONG!"), `GET /items`, `POST /items`, `GET /items/:id`
// (any valid credentials), on the plugin's own database. Run: node carmen.js --config <file>.
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendPlugin, coreServices } = require('@backstage/backend-plugin-api');
const { InputError, NotFoundError } = require('@backstage/errors');
const express = require('express');
const Router = require('express-promise-router');

const carmen = createBackendPlugin({
  pluginId: 'carmen',
  register(env) {
    env.registerInit({
      deps: {
        http: coreServices.httpRouter,
        httpAuth: coreServices.httpAuth,
        logger: coreServices.logger,
        database: coreServices.database,
      },
      async init({ http, httpAuth, logger, database }) {
        const db = await database.getClient();
        if (!(await db.schema.hasTable('items'))) {
          await db.schema.createTable('items', table => {
            table.increments('id');
            table.string('name', 255).notNullable();
          });
        }
        const router = Router();
        router.use(express.json());
        router.get('/health', (_req, res) => {
          logger.info('PONG!');
          res.json({ status: 'ok' });
        });
        router.get('/items', async (req, res) => {
          await httpAuth.credentials(req);
          res.json(await db('items').select('id', 'name').orderBy('id'));
        });
        router.post('/items', async (req, res) => {
          await httpAuth.credentials(req);
          const name = typeof req.body?.name === 'string' ? req.body.name.trim() : '';
          if (name === '' || name.length > 255) {
            throw new InputError('name must be 1 to 255 characters');
          }
          const [id] = await db('items').insert({ name }, ['id']);
          res.status(201).json({ id: typeof id === 'object' ? id.id : id, name });
        });
        router.get('/items/:id', async (req, res) => {
          await httpAuth.credentials(req);
          const item = await db('items').where({ id: Number(req.params.id) }).first('id', 'name');
          if (!item) {
            throw new NotFoundError(`no item with id ${req.params.id}`);
          }
          res.json(item);
        });
        http.use(router);
        http.addAuthPolicy({ path: '/health', allow: 'unauthenticated' });
      },
    });
  },
});

const backend = createBackend();
backend.add(carmen);
backend.start();
