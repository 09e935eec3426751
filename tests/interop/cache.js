// Backstage's own cache client (CacheManager from @backstage/backend-defaults) on Redis, for the
// interop test: `node cache.js <redis-url> <pluginId> set <key> <json> [ttlMs]` stores a value,
// `node cache.js <redis-url> <pluginId> get <key>` prints the value as JSON (`null` if absent).
const { CacheManager } = require('@backstage/backend-defaults/cache');
const { ConfigReader } = require('@backstage/config');

async function main() {
  const [url, pluginId, op, key, value, ttl] = process.argv.slice(2);
  const config = new ConfigReader({
    backend: { cache: { store: 'redis', connection: url } },
  });
  const cache = CacheManager.fromConfig(config).forPlugin(pluginId);
  if (op === 'set') {
    await cache.set(key, JSON.parse(value), ttl ? { ttl: Number(ttl) } : {});
    process.stdout.write('ok\n');
  } else {
    const found = await cache.get(key);
    process.stdout.write(`${JSON.stringify(found === undefined ? null : found)}\n`);
  }
}

main().then(
  () => process.exit(0),
  error => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  },
);
