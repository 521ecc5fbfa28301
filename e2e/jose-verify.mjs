// Verifies a Gatehouse session JWT with the `jose` library against the server's published JWKS, independently of
// the Rust code that signed it. Usage: node jose-verify.mjs <jwks url> <token> <audience>
// Prints the verified payload and protected header as JSON; exits 1 if verification fails.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, token, audience] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { audience });
  console.log(JSON.stringify({ payload, protectedHeader }));
} catch (error) {
  console.error(`verification failed: ${error.code ?? ''} ${error.message}`);
  process.exit(1);
}
