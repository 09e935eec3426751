// Validates an OpenAPI document against the specification's JSON Schema, for the OpenAPI test
// (tests/tests/it/openapi.rs). Run: node openapi.js <file.json>; prints "valid" or the errors.
(async () => {
  const { Validator } = await import('@seriousme/openapi-schema-validator');
  const validator = new Validator();
  const result = await validator.validate(process.argv[2]);
  if (result.valid) {
    console.log('valid');
  } else {
    console.log(JSON.stringify(result.errors, null, 2));
    process.exitCode = 1;
  }
})();
