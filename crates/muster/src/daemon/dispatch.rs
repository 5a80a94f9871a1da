//! One request, to the handler of its command.

use super::Daemon;
use muster_proto::{Request, Response, SupervisorRequest, Target};
use std::sync::Arc;

impl Daemon {
    pub(super) async fn handle(self: Arc<Self>, req: Request) -> anyhow::Result<Response> {
        Ok(match req {
            Request::Hello { .. } => Response::Error {
                message: "hello was already exchanged".into(),
            },
            Request::Events { .. } => Response::Error {
                message: "events is a stream, served by the connection".into(),
            },
            Request::Ping => Response::Pong {
                pid: std::process::id(),
                uptime_ms: self.started.elapsed().as_millis() as u64,
            },
            Request::Start { apps } => self.start(apps).await?,
            Request::Apply {
                apps,
                action,
                update_env,
            } => self.apply(apps, action, update_env).await?,
            Request::Stop { target } => self.stop_apps(&target).await?,
            Request::Restart { target } => self.restart_apps(&target).await?,
            Request::Reload { target } => self.reload_apps(&target).await?,
            Request::Delete { target } => self.delete_apps(&target).await?,
            Request::Scale { name, instances } => self.scale(&name, instances).await?,
            Request::List => Response::Apps {
                apps: self.infos(&self.resolve(&Target::All).await?).await?,
            },
            Request::Show { target } => Response::Apps {
                apps: self.infos(&self.resolve(&target).await?).await?,
            },
            Request::Send {
                target,
                message,
                worker,
            } => {
                self.forward(&target, SupervisorRequest::Send { message, worker })
                    .await?
            }
            Request::Signal { target, signal } => {
                self.forward(&target, SupervisorRequest::Signal { signal })
                    .await?
            }
            Request::Flush { target } => self.forward(&target, SupervisorRequest::Flush).await?,
            Request::Save => self.save().await?,
            Request::Resurrect => self.resurrect().await?,
            Request::Kill => self.kill().await?,
        })
    }
}
