export default { apps: [ { script: 'api.js' } ;
