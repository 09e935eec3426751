// Backstage's permission backend from npm with a policy that answers CONDITIONAL for the Rust
// plugin's resource type, and a TypeScript plugin `tstodo` that publishes the same permission,
// resource type and rule as the Rust plugin `todo`, for the permissions interop test
// (tests/tests/it/permissions.rs). Run: node permission.js --config <file>.
const { createBackend } = require('@backstage/backend-defaults');
const {
  createBackendModule,
  createBackendPlugin,
  coreServices,
} = require('@backstage/backend-plugin-api');
const { AuthorizeResult, createPermission } = require('@backstage/plugin-permission-common');
const { createPermissionResourceRef, createPermissionRule } = require('@backstage/plugin-permission-node');
const { policyExtensionPoint } = require('@backstage/plugin-permission-node/alpha');
const { z } = require('zod/v3');

const todoRead = createPermission({
  name: 'todo.item.read',
  attributes: { action: 'read' },
  resourceType: 'todo-item',
});

// Allows the todo items whose author is Ada, whoever asks; everything else is allowed.
const policy = createBackendModule({
  pluginId: 'permission',
  moduleId: 'ada-only',
  register(reg) {
    reg.registerInit({
      deps: { policy: policyExtensionPoint },
      async init({ policy }) {
        policy.setPolicy({
          async handle(request) {
            if (request.permission.resourceType === 'todo-item') {
              return {
                result: AuthorizeResult.CONDITIONAL,
                pluginId: 'todo',
                resourceType: 'todo-item',
                conditions: {
                  anyOf: [
                    { rule: 'is-author', resourceType: 'todo-item', params: { author: 'user:default/ada' } },
                  ],
                },
              };
            }
            return { result: AuthorizeResult.ALLOW };
          },
        });
      },
    });
  },
});

// The TypeScript twin of the Rust plugin's registrations, for comparing the metadata.
const tstodo = createBackendPlugin({
  pluginId: 'tstodo',
  register(env) {
    env.registerInit({
      deps: { registry: coreServices.permissionsRegistry },
      async init({ registry }) {
        const resourceRef = createPermissionResourceRef().with({
          pluginId: 'tstodo',
          resourceType: 'todo-item',
        });
        registry.addResourceType({
          resourceRef,
          permissions: [todoRead],
          rules: [
            createPermissionRule({
              name: 'is-author',
              description: 'Allow the todo items of an author',
              resourceRef,
              paramsSchema: z.object({ author: z.string().describe("The author's entity ref") }),
              apply: (todo, { author }) => todo.author === author,
              toQuery: ({ author }) => ({ author }),
            }),
          ],
          getResources: async refs => refs.map(() => undefined),
        });
      },
    });
  },
});

const backend = createBackend();
backend.add(require('@backstage/plugin-permission-backend'));
backend.add(policy);
backend.add(tstodo);
backend.start();
