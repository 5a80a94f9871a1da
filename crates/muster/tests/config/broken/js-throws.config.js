// An ecosystem file that fails while it is evaluated.
const url = process.env.MUSTER_TEST_SURELY_UNSET_DATABASE_URL;
if (!url) {
  throw new Error('DATABASE_URL is not set');
}
module.exports = { apps: [{ script: 'api.js', env: { url } }] };
