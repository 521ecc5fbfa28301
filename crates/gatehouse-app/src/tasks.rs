//! The application's background work: sweeping expired rows, following settings saved on other instances,
//! reloading session signing keys, and warning about expiring Microsoft credentials. [`BackgroundTasks`] starts
//! them with the application and stops them on shutdown; each does its work through the same [`App`] (and clock)
//! as requests do, so tests run them too.

use std::{future::Future, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{App, identity_providers, keys, maintenance};

/// How often each task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskIntervals {
    pub sweep: Duration,
    pub settings_poll: Duration,
    pub key_reload: Duration,
    pub expiry_warning: Duration,
}

impl TaskIntervals {
    /// The intervals for `config`: sweeps every 15 minutes, settings polled every `server.settings_poll_interval`,
    /// keys reloaded every few seconds, expiring credentials reported daily.
    pub fn for_config(config: &gatehouse_core::config::Config) -> Self {
        Self {
            sweep: maintenance::SWEEP_INTERVAL,
            settings_poll: config.server.settings_poll_interval.as_duration(),
            key_reload: keys::RELOAD_INTERVAL,
            expiry_warning: identity_providers::EXPIRY_WARNING_INTERVAL,
        }
    }
}

/// The running tasks. Dropping this without [`Self::stop`] leaves them running until the runtime ends.
#[derive(Debug)]
pub struct BackgroundTasks {
    stop: watch::Sender<()>,
    running: Vec<JoinHandle<()>>,
}

impl BackgroundTasks {
    /// Starts every task. The sweeper and the expiry warner run at once, then at their intervals; settings and keys
    /// were just loaded by [`App::new`], so their first reload comes one interval later.
    pub fn start(app: &App, intervals: TaskIntervals) -> Self {
        let (stop, stopped) = watch::channel(());
        let running = vec![
            every(intervals.sweep, Start::Now, stopped.clone(), app.clone(), |app| async move {
                let swept = maintenance::sweep(&app).await;
                tracing::debug!(?swept, "housekeeping");
            }),
            every(intervals.settings_poll, Start::AfterInterval, stopped.clone(), app.clone(), |app| async move {
                if let Err(error) = app.refresh_settings().await {
                    // The last good settings stay in force; a broken document must not take sign-in down.
                    tracing::error!(%error, "could not apply the saved identity-provider settings");
                }
            }),
            every(intervals.key_reload, Start::AfterInterval, stopped.clone(), app.clone(), |app| async move {
                if let Err(error) = app.keys().reload().await {
                    tracing::error!(%error, "could not reload signing keys; using the ones loaded before");
                }
            }),
            every(intervals.expiry_warning, Start::Now, stopped, app.clone(), |app| async move {
                app.identity_providers().warn_about_expiring_credentials().await;
            }),
        ];
        Self { stop, running }
    }

    /// Stops every task: a round of work already under way finishes first.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        for task in self.running {
            let _ = task.await;
        }
    }
}

/// When a task first runs.
#[derive(Clone, Copy, Debug)]
enum Start {
    Now,
    AfterInterval,
}

fn every<F, Fut>(
    interval: Duration,
    start: Start,
    mut stopped: watch::Receiver<()>,
    app: App,
    work: F,
) -> JoinHandle<()>
where
    F: Fn(App) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let first = match start {
            Start::Now => tokio::time::Instant::now(),
            Start::AfterInterval => tokio::time::Instant::now() + interval,
        };
        let mut ticks = tokio::time::interval_at(first, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stopped.changed() => break,
                _ = ticks.tick() => work(app.clone()).await,
            }
        }
    })
}
