// A Backstage backend from npm with the MCP actions backend and one TypeScript plugin,
// `tsactions`, that offers an action; the Rust plugins of the actions interop test
// (tests/tests/it/interop.rs) join it through discovery. Run: node mcp.js --config <file>.
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendPlugin } = require('@backstage/backend-plugin-api');
const { actionsRegistryServiceRef } = require('@backstage/backend-plugin-api/alpha');

const tsactions = createBackendPlugin({
  pluginId: 'tsactions',
  register(env) {
    env.registerInit({
      deps: { registry: actionsRegistryServiceRef },
      async init({ registry }) {
        registry.register({
          name: 'shout',
          title: 'Shout',
          description: 'Answers the text in capitals.',
          attributes: { readOnly: true },
          schema: {
            input: z => z.object({ text: z.string() }),
            output: z => z.object({ text: z.string() }),
          },
          action: async ({ input, credentials }) => ({
            output: { text: `${input.text.toUpperCase()} (for ${credentials.principal.type})` },
          }),
        });
      },
    });
  },
});

const backend = createBackend();
backend.add(require('@backstage/plugin-mcp-actions-backend'));
backend.add(tsactions);
backend.start();
