// A pm2 ecosystem file as people write them: computed values, numbers for strings,
// fields muster does not implement, and a deploy section.
const port = 3000;

module.exports = {
  apps: [
    {
      name: 'api',
      script: 'api.js',
      args: ['--port', port],
      node_args: ['--max-old-space-size=512'],
      instances: 4,
      exec_mode: 'cluster',
      listen: [`127.0.0.1:${port}`, `[::1]:${port}`],
      max_restarts: 15,
      min_uptime: 2 * 1000,
      kill_timeout: 3000,
      listen_timeout: 10000,
      wait_ready: true,
      max_memory_restart: '200M',
      out_file: './logs/api.out.log',
      error_file: './logs/api.err.log',
      merge_logs: true,
      log_date_format: 'YYYY-MM-DD HH:mm:ss',
      watch: false,
      cron_restart: '0 4 * * *',
      env: { NODE_ENV: 'development', PORT: port },
      env_production: { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/prod' },
    },
    {
      name: 'worker',
      script: 'worker.py',
      args: '--queue jobs --name "night shift"',
      cwd: './jobs',
      instances: 'max',
      autorestart: true,
      restart_delay: 500,
      exp_backoff_restart_delay: 100,
      min_uptime: '10s',
      time: true,
      log_max_size: '10M',
      log_keep: 3,
      env: { QUEUE: 'jobs', UNSET: undefined },
    },
  ],
  deploy: {
    production: { user: 'deploy', host: 'example.invalid', ref: 'origin/main' },
  },
};
