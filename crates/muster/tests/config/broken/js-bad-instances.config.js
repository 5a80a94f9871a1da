module.exports = {
  apps: [{ name: 'api', script: 'api.js', instances: 'lots' }],
};
