// A Backstage backend from npm whose plugin `audited` records audit events, logging JSON lines
// as in production, for the auditor's interop test (tests/tests/it/audit.rs).
// Run: node audit.js --config <file>.
process.env.NODE_ENV = 'production';
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendPlugin, coreServices } = require('@backstage/backend-plugin-api');
const { NotFoundError } = require('@backstage/errors');
const Router = require('express-promise-router');

const audited = createBackendPlugin({
  pluginId: 'audited',
  register(env) {
    env.registerInit({
      deps: { http: coreServices.httpRouter, auditor: coreServices.auditor },
      async init({ http, auditor }) {
        const router = Router();
        // Succeeds: initiated, then succeeded, with the meta of both steps.
        router.get('/things/:id', async (req, res) => {
          const event = await auditor.createEvent({
            eventId: 'thing-read',
            severityLevel: 'medium',
            request: req,
            meta: { id: req.params.id },
          });
          await event.success({ meta: { found: true } });
          res.json({ id: req.params.id });
        });
        // Fails: initiated, then failed with the error.
        router.delete('/things/:id', async (req, res) => {
          const event = await auditor.createEvent({
            eventId: 'thing-delete',
            severityLevel: 'high',
            request: req,
          });
          const error = new NotFoundError(`no thing ${req.params.id}`);
          await event.fail({ error });
          throw error;
        });
        // Without a request: the plugin itself is the actor.
        router.post('/sweep', async (_req, res) => {
          const event = await auditor.createEvent({ eventId: 'sweep', severityLevel: 'low' });
          await event.success();
          res.json({ swept: true });
        });
        // Recorded around the handler, as Rust's `#[route(..., audit = "thing-list")]` does.
        router.get('/listing', async (req, res) => {
          const event = await auditor.createEvent({
            eventId: 'thing-list',
            severityLevel: 'medium',
            request: req,
          });
          await event.success();
          res.json([1, 2]);
        });
        http.use(router);
        http.addAuthPolicy({ path: '/sweep', allow: 'unauthenticated' });
      },
    });
  },
});

const backend = createBackend();
backend.add(audited);
backend.start();
