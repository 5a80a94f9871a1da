//! `cron_restart`: restart the app at every time its cron expression names (local time).

use super::Action;
use crate::home::Home;
use chrono::Local;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::time::Duration;

/// Parses a cron expression: 5 fields (minute first), or 6 with seconds first.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

/// Restarts `name` on `expr`'s schedule until aborted.
pub async fn run(home: Home, name: String, expr: String) {
    let cron = match parse(&expr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("muster daemon: {name}: cron_restart: {e}");
            return;
        }
    };
    loop {
        let now = Local::now();
        let next = match cron.find_next_occurrence(&now, false) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("muster daemon: {name}: cron_restart {expr:?}: no next time: {e}");
                return;
            }
        };
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        super::act(
            &home,
            &name,
            Action::Restart,
            &format!("cron_restart {expr:?}"),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_fields_parse_and_nonsense_does_not() {
        assert!(parse("0 4 * * *").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        let e = parse("every day").unwrap_err();
        assert!(e.contains("not a cron expression"), "{e}");
    }
}
