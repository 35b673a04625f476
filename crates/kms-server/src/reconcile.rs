//! The reconciler: keeps the installed EncryptionConfiguration equal to what the current
//! configuration revision renders to, and puts it back when someone changes it.
//!
//! A full pass runs at start, after every accepted change and every `--resync`: render with the
//! transition from the file ucp-kms last installed (its record beside the installed file, see
//! `kms_mount::install`, so a hand edit never becomes the starting point, even across a
//! restart; without a record, the file on disk), preflight the plugin, install, read back. A
//! file that enables KMS is never installed while the preflight fails; a file on disk that
//! cannot be decoded and has no record to start from is reported and left alone, as it may be
//! all that can read the stored data.
//!
//! A repair runs when the file watcher reports a change of the installed file: it restores the
//! recorded file, without a new preflight, because that exact file was already accepted and is
//! what the API server runs with. A file ucp-kms never installed has no record and is never
//! restored. The reconciler's own writes leave the file equal to the record, so they are
//! recognised and cause no second write.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kms_model::{EncryptionConfiguration, KmsSettings, KubeVersion};
use kms_mount::drift::{self, DriftError, Installation, Installed};
use kms_mount::install::{FILE_MODE, InstallError, InstallOutcome, OwnedFile};
use kms_mount::preflight::{Preflight, PreflightOptions};
use kms_render::Rendered;
use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::store::Store;

/// What the last full pass concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No pass has finished yet.
    Pending,
    /// No configuration has been stored yet; the host is left alone.
    NoConfig,
    /// KMS is disabled and no EncryptionConfiguration is installed: there is nothing to write.
    NothingToInstall,
    /// The installed file already was the rendered one.
    Unchanged,
    /// The rendered file was installed.
    Installed,
    /// The rendered file enables KMS but the preflight failed; nothing was written.
    Blocked,
    /// The pass could not complete; see the message.
    Failed,
}

impl Outcome {
    /// The spelling in JSON and in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::NoConfig => "no_config",
            Self::NothingToInstall => "nothing_to_install",
            Self::Unchanged => "unchanged",
            Self::Installed => "installed",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
        }
    }

    /// Whether the host is as the configuration wants it.
    pub const fn is_good(self) -> bool {
        matches!(self, Self::NoConfig | Self::NothingToInstall | Self::Unchanged | Self::Installed)
    }
}

/// The result of the last full pass.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the pass finished, RFC 3339 in UTC; empty while pending.
    pub time: String,
    /// The configuration revision the pass worked from.
    pub revision: Option<u64>,
    /// What it concluded.
    pub outcome: Outcome,
    /// Why, in one sentence.
    pub message: String,
    /// Whether the configuration enables KMS.
    pub kms_enabled: bool,
    /// `sha256:<hex>` of the file the configuration renders to, when it renders one.
    pub desired_hash: Option<String>,
    /// The warnings of the transition to the rendered file.
    pub warnings: Vec<String>,
    /// The last preflight: the plugin socket and probe, what it found wrong (a pass that
    /// enables KMS installs nothing while anything is) and its warnings.
    #[serde(skip)]
    pub preflight: Option<Preflight>,
    /// The rendered file.
    #[serde(skip)]
    pub desired: Option<Arc<[u8]>>,
    /// The rendered file's content, for answers that must not show key material.
    #[serde(skip)]
    pub desired_config: Option<Arc<EncryptionConfiguration>>,
}

impl Report {
    fn pending() -> Self {
        Self {
            time: String::new(),
            revision: None,
            outcome: Outcome::Pending,
            message: "the first reconcile has not finished yet".to_owned(),
            kms_enabled: false,
            desired_hash: None,
            warnings: Vec::new(),
            preflight: None,
            desired: None,
            desired_config: None,
        }
    }
}

/// Where and how the reconciler works.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// The directory host paths are interpreted under.
    pub root: PathBuf,
    /// Host path of the installed EncryptionConfiguration.
    pub encryption_config: PathBuf,
    /// The Kubernetes version rules apply for.
    pub kubernetes_version: KubeVersion,
    /// Period of the full pass when nothing else triggers one.
    pub resync: Duration,
    /// Shell command run after the installed file changed.
    pub on_change: Option<String>,
    /// How long the command may run.
    pub on_change_timeout: Duration,
}

/// The requests a reconciler acts on.
#[derive(Debug)]
enum Trigger {
    /// A new configuration revision was stored.
    Changed,
    /// The watcher saw a change in the installed file's directory.
    FileEvent,
}

/// The side of the reconciler the API uses: trigger a pass, read or wait for its report.
#[derive(Clone, Debug)]
pub struct Handle {
    triggers: mpsc::UnboundedSender<Trigger>,
    reports: watch::Receiver<Arc<Report>>,
    version: KubeVersion,
    file: OwnedFile,
}

impl Handle {
    /// Asks for a full pass, for a newly stored revision.
    pub fn changed(&self) {
        let _ = self.triggers.send(Trigger::Changed);
    }

    /// The last full pass's report.
    pub fn report(&self) -> Arc<Report> {
        self.reports.borrow().clone()
    }

    /// Waits until a full pass has worked from `revision` or a newer one, at most `timeout`.
    pub async fn wait_for(&self, revision: u64, timeout: Duration) -> Option<Arc<Report>> {
        let mut reports = self.reports.clone();
        let done = |report: &Arc<Report>| report.revision.is_some_and(|r| r >= revision);
        let waited = tokio::time::timeout(timeout, reports.wait_for(done)).await;
        match waited {
            Ok(Ok(report)) => Some(report.clone()),
            _ => None,
        }
    }

    /// What `settings` would render to against the file a full pass would start from now, so
    /// that a configuration whose transition cannot be rendered is refused before it is stored.
    ///
    /// A starting file that cannot be decoded is a problem of this host, not of the
    /// configuration: the preview is then made without it (`Ok(None)` when KMS is off), and
    /// the reconciler reports the file instead of replacing it.
    ///
    /// # Errors
    ///
    /// The installed file cannot be read, or the rendering error, as one line.
    pub fn preview(&self, settings: &KmsSettings) -> Result<Option<Rendered>, String> {
        let installation =
            Installation::read(&self.file, self.version).map_err(|err| error_chain(&err))?;
        let start = match installation.start() {
            Installed::Unparseable { .. } => &Installed::Nothing,
            readable => readable,
        };
        drift::desired(settings, self.version, start).map_err(|err| error_chain(&err))
    }

    /// The installed file.
    pub fn file(&self) -> &OwnedFile {
        &self.file
    }
}

/// The reconciler's own side: its state and the loop.
pub struct Reconciler {
    options: ReconcileOptions,
    file: OwnedFile,
    store: Arc<Store>,
    metrics: Metrics,
    triggers: mpsc::UnboundedReceiver<Trigger>,
    sender: mpsc::UnboundedSender<Trigger>,
    reports: watch::Sender<Arc<Report>>,
    /// `sha256:<hex>` of the file a full pass of this process last installed or verified.
    installed_hash: Option<String>,
    on_change_lock: Arc<tokio::sync::Mutex<()>>,
    /// The last preflight that found the host ready, with the hash of the file it cleared.
    ready: Option<(String, Preflight)>,
}

/// Why a full pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The periodic check: the plugin is always asked again, so health stays current.
    Resync,
    /// A new revision was stored.
    Changed,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("file", &self.file).finish_non_exhaustive()
    }
}

impl Reconciler {
    /// Prepares a reconciler and the handle the API uses. Nothing runs until [`Reconciler::run`].
    ///
    /// # Errors
    ///
    /// [`InstallError`] when the EncryptionConfiguration path is relative or names no file.
    pub fn new(
        options: ReconcileOptions,
        store: Arc<Store>,
        metrics: Metrics,
    ) -> Result<(Self, Handle), InstallError> {
        let file = OwnedFile::new(&options.root, &options.encryption_config)?;
        let (sender, triggers) = mpsc::unbounded_channel();
        let (reports, receiver) = watch::channel(Arc::new(Report::pending()));
        let handle = Handle {
            triggers: sender.clone(),
            reports: receiver,
            version: options.kubernetes_version,
            file: file.clone(),
        };
        let reconciler = Self {
            options,
            file,
            store,
            metrics,
            triggers,
            sender,
            reports,
            installed_hash: None,
            on_change_lock: Arc::default(),
            ready: None,
        };
        Ok((reconciler, handle))
    }

    /// Runs passes and repairs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut watcher = self.new_watcher();
        let mut resync = tokio::time::interval(self.options.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the pass at start, before any trigger is looked at, so
        // that a revision stored meanwhile gets one pass, not two racing for the report.
        resync.tick().await;
        self.full_pass(Pass::Resync).await;
        self.watch_dir(&mut watcher);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = resync.tick() => self.full_pass(Pass::Resync).await,
                Some(trigger) = self.triggers.recv() => match trigger {
                    Trigger::Changed => self.changed_pass().await,
                    Trigger::FileEvent => {
                        // An editor's save is several events; one check covers them all. A new
                        // revision queued behind them still gets its full pass.
                        let mut changed = false;
                        while let Ok(trigger) = self.triggers.try_recv() {
                            changed |= matches!(trigger, Trigger::Changed);
                        }
                        self.repair().await;
                        if changed {
                            self.changed_pass().await;
                        }
                    }
                },
            }
            self.watch_dir(&mut watcher);
        }
        tracing::debug!("reconciler stopped");
    }

    /// A full pass for a newly stored revision, unless a pass already worked from the newest
    /// one: several revisions stored in a row need one pass, and a second would only replace
    /// the report of the first with "unchanged".
    async fn changed_pass(&mut self) {
        let newest = self.store.lock().await.current().map(|current| current.meta.revision);
        let covered = self.reports.borrow().revision;
        if newest.is_some() && covered >= newest {
            tracing::debug!(config.revision = covered, "the last pass already covers the revision");
            return;
        }
        self.full_pass(Pass::Changed).await;
    }

    fn new_watcher(&self) -> Option<notify::RecommendedWatcher> {
        let sender = self.sender.clone();
        let name = self.file.path().file_name().map(ToOwned::to_owned);
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            // The directory also holds the previous version and editors' swap files.
            let ours = event.paths.iter().any(|path| path.file_name() == name.as_deref());
            if ours {
                let _ = sender.send(Trigger::FileEvent);
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "cannot watch the installed file; repairs wait for the next resync"
                );
                None
            }
        }
    }

    /// Watches the file's directory, since the file itself is replaced by rename. Called after
    /// every pass because the directory may have been created or re-created meanwhile.
    fn watch_dir(&self, watcher: &mut Option<notify::RecommendedWatcher>) {
        let Some(watcher) = watcher else { return };
        let dir = self.file.dir();
        if !dir.is_dir() {
            return;
        }
        if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::debug!(error = %err, fs.dir = %dir.display(), "cannot watch directory");
        }
    }

    #[tracing::instrument(name = "reconcile", skip_all)]
    async fn full_pass(&mut self, pass: Pass) {
        let report = self.compute(pass).await;
        self.metrics.observe_reconcile(report.outcome.as_str());
        match report.outcome {
            Outcome::Failed | Outcome::Blocked => tracing::warn!(
                reconcile.outcome = report.outcome.as_str(),
                config.revision = report.revision,
                "{}",
                report.message
            ),
            _ => tracing::debug!(
                reconcile.outcome = report.outcome.as_str(),
                config.revision = report.revision,
                "{}",
                report.message
            ),
        }
        self.reports.send_replace(Arc::new(report));
    }

    async fn compute(&mut self, pass: Pass) -> Report {
        let version = self.options.kubernetes_version;
        let mut report = Report::pending();
        let current = self.store.lock().await.current().cloned();
        let Some(revision) = current else {
            report.outcome = Outcome::NoConfig;
            report.message = "no configuration has been stored yet".to_owned();
            return finish(report);
        };
        report.revision = Some(revision.meta.revision);
        self.metrics.config_revision.set(revision.meta.revision as i64);

        let settings = match kms_model::load_settings(&revision.document, version) {
            Ok(validated) => validated.settings,
            Err(invalid) => {
                let first = invalid.errors.first().map(ToString::to_string).unwrap_or_default();
                return failed(
                    report,
                    format!(
                        "revision {} is not valid for Kubernetes {version}: {first}",
                        revision.meta.revision
                    ),
                );
            }
        };
        report.kms_enabled = settings.enabled;

        // The transition starts from the recorded file after a hand edit; without a record,
        // from whatever is on disk now, so a broken file that the operator fixed or removed
        // counts as fixed.
        let file = self.file.clone();
        let on_disk = match tokio::task::spawn_blocking(move || file.read_on_disk()).await {
            Ok(Ok(on_disk)) => on_disk,
            Ok(Err(err)) => return failed(report, error_chain(&err)),
            Err(err) => return failed(report, format!("reading task failed: {err}")),
        };
        let installation = Installation::from_on_disk(on_disk.clone(), version, &self.file);
        let rendered = match desired(&settings, version, &installation, &self.file) {
            Ok(Some(rendered)) => rendered,
            Ok(None) => {
                self.metrics.plugin_healthy.set(-1);
                report.outcome = Outcome::NothingToInstall;
                report.message =
                    "KMS is disabled and no EncryptionConfiguration is installed".to_owned();
                return finish(report);
            }
            Err(message) => return failed(report, message),
        };
        report.desired_hash = Some(rendered.hash.clone());
        report.warnings.clone_from(&installation.warnings);
        report.warnings.extend(rendered.warnings.iter().cloned());
        report.desired = Some(Arc::from(rendered.yaml.as_slice()));
        report.desired_config = Some(Arc::new(rendered.config.clone()));

        let checked = match self.still_ready(pass, &rendered) {
            Some(checked) => checked,
            None => self.preflight(&settings).await,
        };
        self.ready = checked.is_ready().then(|| (rendered.hash.clone(), checked.clone()));
        report.preflight = Some(checked.clone());
        if settings.enabled && !checked.is_ready() {
            let problem = checked.problems.first().cloned().unwrap_or_default();
            report.outcome = Outcome::Blocked;
            report.message = format!(
                "not installing an EncryptionConfiguration that enables KMS: preflight failed: \
                 {problem}"
            );
            return finish(report);
        }

        // A new revision that renders the file already installed and recorded, as just read,
        // writes nothing: the install would only read both files again and the verify once
        // more. Loosened modes are the watcher's and the resync's to put back.
        let in_place = pass == Pass::Changed
            && on_disk.installed.as_deref() == Some(rendered.yaml.as_slice())
            && on_disk.recorded.as_deref() == Some(rendered.yaml.as_slice());
        let installed = if in_place {
            self.installed_hash = Some(rendered.hash.clone());
            Ok(InstallOutcome::Unchanged)
        } else {
            self.install(&rendered.yaml).await
        };
        if !in_place && installed.is_ok() && !self.verify(&rendered.yaml) {
            return failed(
                report,
                format!(
                    "\"{}\" changed again right after the install; the repair puts it back",
                    self.file.path().display()
                ),
            );
        }
        match installed {
            Ok(InstallOutcome::Unchanged) => {
                report.outcome = Outcome::Unchanged;
                report.message = format!("installed file is up to date ({})", rendered.hash);
            }
            Ok(_) => {
                report.outcome = Outcome::Installed;
                report.message = format!("installed EncryptionConfiguration {}", rendered.hash);
                tracing::info!(
                    fs.path = %self.file.path().display(),
                    config.hash = %rendered.hash,
                    "installed the EncryptionConfiguration"
                );
                self.run_on_change();
            }
            Err(message) => return failed(report, message),
        }
        finish(report)
    }

    /// The last preflight, when a new revision renders the very file that preflight cleared
    /// and that a pass installed or verified since: nothing new is written, and the file's
    /// endpoint, API version and timeout, which are all the preflight asks with, are the same.
    /// Edits of other settings are then stored without another plugin round trip; the resync
    /// asks the plugin again either way.
    fn still_ready(&self, pass: Pass, rendered: &Rendered) -> Option<Preflight> {
        let (hash, checked) = self.ready.as_ref()?;
        let installed = self.installed_hash.as_ref() == Some(&rendered.hash);
        (pass == Pass::Changed && installed && *hash == rendered.hash).then(|| checked.clone())
    }

    /// The host checks of `kms-mount`: the socket listens and the plugin answers its health
    /// call, and the directories involved are not open to others.
    async fn preflight(&self, settings: &KmsSettings) -> Preflight {
        let options = PreflightOptions {
            root: self.options.root.clone(),
            encryption_config: self.options.encryption_config.clone(),
            probe: true,
        };
        let version = self.options.kubernetes_version;
        let started = Instant::now();
        let checked = kms_mount::preflight::preflight(settings, version, &options).await;
        if checked.plugin.is_some() {
            self.metrics.probe_duration.observe(started.elapsed().as_secs_f64());
        }
        let healthy = if settings.enabled { i64::from(checked.is_ready()) } else { -1 };
        self.metrics.plugin_healthy.set(healthy);
        checked
    }

    /// Installs `bytes`; the record beside the file then holds them, for repairs and for the
    /// next transition.
    async fn install(&mut self, bytes: &[u8]) -> Result<InstallOutcome, String> {
        let file = self.file.clone();
        let owned = bytes.to_vec();
        let outcome = tokio::task::spawn_blocking(move || file.install(&owned))
            .await
            .map_err(|err| format!("install task failed: {err}"))?
            .map_err(|err| error_chain(&err))?;
        self.installed_hash = Some(kms_render::config_hash(bytes));
        Ok(outcome)
    }

    /// Whether the installed file now holds `bytes`; `false` also when someone changed it again
    /// right after the install, which the watcher reports as a new event.
    fn verify(&self, bytes: &[u8]) -> bool {
        matches!(self.file.read(), Ok(Some(read)) if read == bytes)
    }

    /// Puts the recorded file back when the one on disk differs from it in bytes or mode.
    /// The file is written like an install, but the previous version kept for rollback stays.
    #[tracing::instrument(name = "repair", skip_all)]
    async fn repair(&mut self) {
        // Only a file ucp-kms installed or verified is restored, never one it merely found,
        // which may be broken and fixed by hand since: such a file has no record.
        let file = self.file.clone();
        let on_disk = match tokio::task::spawn_blocking(move || file.read_on_disk()).await {
            Ok(Ok(on_disk)) => on_disk,
            Ok(Err(err)) => {
                tracing::error!(error = %error_chain(&err), "cannot read the installed file");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "reading task failed");
                return;
            }
        };
        let Some(trusted) = on_disk.recorded else { return };
        let started = Instant::now();
        let Some(difference) = difference(self.file.path(), &trusted) else { return };
        let file = self.file.clone();
        let bytes = trusted.clone();
        let restored = tokio::task::spawn_blocking(move || file.restore(&bytes)).await;
        match restored.map_err(|err| err.to_string()).and_then(|r| r.map_err(|e| error_chain(&e))) {
            Ok(outcome) => {
                let rewritten = outcome != InstallOutcome::Unchanged;
                self.metrics.drift_repairs.inc();
                tracing::warn!(
                    fs.path = %self.file.path().display(),
                    drift.difference = %difference,
                    repair.ms = started.elapsed().as_secs_f64() * 1000.0,
                    "the installed EncryptionConfiguration was changed outside ucp-kms; restored it"
                );
                if rewritten {
                    self.run_on_change();
                }
                // Changed once more while it was being restored: look again.
                if !self.verify(&trusted) {
                    let _ = self.sender.send(Trigger::FileEvent);
                }
            }
            Err(err) => tracing::error!(
                fs.path = %self.file.path().display(),
                error = %err,
                "cannot restore the installed EncryptionConfiguration"
            ),
        }
    }

    /// Runs `--on-change` in the background, one run at a time, under its timeout.
    fn run_on_change(&self) {
        let Some(command) = self.options.on_change.clone() else { return };
        let timeout = self.options.on_change_timeout;
        let lock = self.on_change_lock.clone();
        tokio::spawn(async move {
            let _running = lock.lock().await;
            run_command(&command, timeout).await;
        });
    }
}

/// The file `settings` call for, rendered with the transition from where `installation`
/// starts.
fn desired(
    settings: &KmsSettings,
    version: KubeVersion,
    installation: &Installation,
    file: &OwnedFile,
) -> Result<Option<Rendered>, String> {
    drift::desired(settings, version, installation.start()).map_err(|err| match err {
        DriftError::Unparseable { .. } => format!(
            "\"{}\": {err}; fix or remove it so that no provider that wrote data is dropped",
            file.path().display()
        ),
        DriftError::Render(_) => error_chain(&err),
    })
}

/// How the file at `path` differs from `expected`, or `None` when it does not.
fn difference(path: &Path, expected: &[u8]) -> Option<String> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(_) => return Some("file deleted".to_owned()),
    };
    if !metadata.is_file() {
        return Some("replaced by something that is not a regular file".to_owned());
    }
    let bytes = fs::read(path).unwrap_or_default();
    let mode = metadata.permissions().mode() & 0o7777;
    let mut parts = Vec::new();
    let drift = drift::compare(Some(&bytes), Some(expected));
    if drift.is_drifted() {
        // The diff goes from the file found to the trusted one: its '-' lines are what the
        // outside change added, its '+' lines what it removed.
        let counted = |sign: char, header: &str| {
            drift.diff.lines().filter(|l| l.starts_with(sign) && !l.starts_with(header)).count()
        };
        let (added, removed) = (counted('-', "---"), counted('+', "+++"));
        parts.push(format!("{added} line(s) added, {removed} removed"));
    }
    if mode != FILE_MODE {
        parts.push(format!("mode {mode:o}, expected {FILE_MODE:o}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Runs `command` with `sh -c` in a process group of its own, logging its exit status and
/// output. Past `timeout` the whole group is killed, so no child of the shell lingers.
async fn run_command(command: &str, timeout: Duration) {
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(on_change.command = command, error = %err, "cannot run --on-change");
            return;
        }
    };
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait().await;
            tracing::error!(
                on_change.command = command,
                on_change.timeout = %humantime::format_duration(timeout),
                "--on-change did not finish in time and was killed"
            );
            return;
        }
    };
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            tracing::error!(on_change.command = command, error = %err, "--on-change failed");
            return;
        }
    };
    let stdout = bounded_text(&stdout.await.unwrap_or_default());
    let stderr = bounded_text(&stderr.await.unwrap_or_default());
    let ms = started.elapsed().as_millis() as u64;
    if status.success() {
        tracing::info!(
            on_change.command = command,
            on_change.status = %status,
            on_change.ms = ms,
            on_change.stdout = %stdout,
            on_change.stderr = %stderr,
            "--on-change finished"
        );
    } else {
        tracing::error!(
            on_change.command = command,
            on_change.status = %status,
            on_change.ms = ms,
            on_change.stdout = %stdout,
            on_change.stderr = %stderr,
            "--on-change failed"
        );
    }
}

/// Everything a child writes to one of its pipes, up to the end.
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
    }
    bytes
}

/// At most 4 KiB of a command's output, as text, for the log.
fn bounded_text(bytes: &[u8]) -> String {
    const LIMIT: usize = 4096;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(LIMIT)]).trim_end().to_owned();
    if bytes.len() > LIMIT { format!("{text} [{} more bytes]", bytes.len() - LIMIT) } else { text }
}

fn finish(mut report: Report) -> Report {
    report.time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    report
}

fn failed(mut report: Report, message: String) -> Report {
    report.outcome = Outcome::Failed;
    report.message = message;
    finish(report)
}

/// `err` and its causes, as one line.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUSTED: &[u8] = b"a\nb\nc\n";

    fn write(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn differences_are_summarised_by_lines_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption-config.yaml");

        write(&path, TRUSTED, 0o600);
        assert_eq!(difference(&path, TRUSTED), None);

        write(&path, b"a\nb\nc\nd\ne\n", 0o600);
        assert_eq!(difference(&path, TRUSTED).unwrap(), "2 line(s) added, 0 removed");

        write(&path, b"a\nX\n", 0o644);
        assert_eq!(
            difference(&path, TRUSTED).unwrap(),
            "1 line(s) added, 2 removed; mode 644, expected 600"
        );

        fs::remove_file(&path).unwrap();
        assert_eq!(difference(&path, TRUSTED).unwrap(), "file deleted");

        fs::create_dir(&path).unwrap();
        assert!(difference(&path, TRUSTED).unwrap().contains("not a regular file"));
    }

    #[test]
    fn command_output_is_bounded() {
        assert_eq!(bounded_text(b"done\n"), "done");
        let long = vec![b'x'; 5000];
        let text = bounded_text(&long);
        assert!(text.ends_with("[904 more bytes]"), "{text}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("finished");
        // The marker is touched by a background child of the shell, which survives a kill of
        // the shell alone.
        let command = format!("(sleep 1; touch {}) & wait", marker.display());
        run_command(&command, Duration::from_millis(100)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a child of --on-change outlived its timeout");
    }
}
