//! Crash safety of the install: a process that installs two files in turn is killed with
//! SIGKILL at random moments, and every time the installed file is one of the two, whole, and
//! the record of what ucp-kms installed agrees with it, or lags behind it in the one way that
//! reads as a completed install.
//!
//! The installing process is this test binary itself, started again with `CHILD_ROOT` set.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kms_model::EncryptionConfiguration;
use kms_mount::install::{DEFAULT_ENCRYPTION_CONFIG, OwnedFile};

/// Set in the child: the root directory to install under, forever.
const CHILD_ROOT: &str = "KMS_MOUNT_CRASH_CHILD_ROOT";
const KILLS: usize = 200;
/// What the child prints once the file exists and the loop starts.
const READY: &str = "installing in a loop";
/// Kills land up to this long after the loop starts: a few installs, each two fsynced writes.
const MAX_DELAY_MICROS: u64 = 100_000;

/// Two files of different sizes, so that a torn write could not pass for either.
fn configs() -> [Vec<u8>; 2] {
    let a = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources:\n  - secrets\n  providers:\n  - kms:\n      apiVersion: v2\n      \
             name: vault\n      endpoint: unix:///run/kmsplugin/socket.sock\n  - identity: {}\n";
    let mut b = a.replace("vault", "vault-next");
    b.push_str(&"# padding to change the size\n".repeat(200));
    [a.as_bytes().to_vec(), b.into_bytes()]
}

/// In the child: installs the two configurations in turn until killed. In a normal run: a
/// short sequence of the same, checked step by step.
#[test]
fn alternating_installs() {
    let [a, b] = configs();
    if let Some(root) = std::env::var_os(CHILD_ROOT) {
        let file = OwnedFile::new(Path::new(&root), Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap();
        file.install(&a).unwrap();
        // On a line of its own: libtest has already written "test alternating_installs ... ".
        println!("\n{READY}");
        loop {
            file.install(&b).unwrap();
            file.install(&a).unwrap();
        }
    }

    let root = tempfile::tempdir().unwrap();
    let file = OwnedFile::new(root.path(), Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap();
    for step in 0..20 {
        let (new, old) = if step % 2 == 0 { (&a, &b) } else { (&b, &a) };
        file.install(new).unwrap();
        assert_eq!(&file.read().unwrap().unwrap(), new);
        assert_eq!(&file.read_record().unwrap().unwrap(), new);
        if step > 0 {
            assert_eq!(&file.read_previous().unwrap().unwrap(), old);
        }
    }
}

/// A small xorshift generator: the kill moments need no more than that, and the seed is
/// printed so a failure can be replayed.
struct Moments(u64);

impl Moments {
    fn next_micros(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

#[test]
fn sigkill_leaves_the_old_or_the_new_file() {
    let [a, b] = configs();
    let root = tempfile::tempdir().unwrap();
    let file = OwnedFile::new(root.path(), Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap();
    let seed = std::env::var("KMS_MOUNT_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
    println!("seed {seed} (set KMS_MOUNT_CRASH_SEED to replay)");
    let mut moments = Moments(seed);
    let me = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut seen = [0usize; 2];
    let mut lagging = 0;

    for kill in 0..KILLS {
        let mut child = Command::new(&me)
            .args(["--exact", "alternating_installs", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROOT, root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line == READY);
        assert!(ready, "the child never started installing");
        sleep(Duration::from_micros(moments.next_micros(MAX_DELAY_MICROS)));
        child.kill().unwrap();
        child.wait().unwrap();

        let installed = file.read().unwrap().expect("a file is installed after every kill");
        let which = [&a, &b].iter().position(|config| **config == installed);
        let Some(which) = which else {
            panic!("kill {kill}: the installed file is neither configuration: {installed:?}");
        };
        seen[which] += 1;
        let parsed: EncryptionConfiguration = serde_yaml::from_slice(&installed).unwrap();
        assert_eq!(parsed.resources.len(), 1);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "kill {kill}");
        let previous = file.read_previous().unwrap();
        if let Some(previous) = &previous {
            assert!(*previous == a || *previous == b, "kill {kill}: the previous version is torn");
        }
        // The record is written after the file: it may still hold the bytes replaced, which
        // were kept as the previous version a moment before. Read together, that is the new
        // file, installed; a hand edit is the only other way the two can differ.
        let record = file.read_record().unwrap().expect("a record is kept after every kill");
        assert!(record == a || record == b, "kill {kill}: the record is torn");
        if record != installed {
            assert_eq!(previous.as_ref(), Some(&record), "kill {kill}: the record ran ahead");
            lagging += 1;
        }
        let on_disk = file.read_on_disk().unwrap();
        assert!(!on_disk.is_hand_edited(), "kill {kill}: an interrupted install reads as an edit");
        assert_eq!(on_disk.trusted(), Some(installed.as_slice()), "kill {kill}");
    }

    // A kill before the rename leaves the temporary file behind; the next install removes it,
    // so at most the last kill's remains.
    let mut leftovers = 0;
    for entry in std::fs::read_dir(file.dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let owned = [
            "encryption-config.yaml",
            "encryption-config.yaml.previous",
            ".encryption-config.yaml.ucp-kms",
        ];
        if !owned.contains(&name.as_str()) {
            // `.<name>.ucp-kms-<random>.tmp` of the file, its previous version or its record.
            let temporary = name.starts_with(".encryption-config.yaml")
                || name.starts_with("..encryption-config.yaml.ucp-kms");
            assert!(temporary && name.ends_with(".tmp"), "unexpected file {name:?}");
            leftovers += 1;
        }
    }
    println!(
        "{KILLS} kills in {:?}, installed a/b: {seen:?}, record behind the file: {lagging}, \
         temporary files left: {leftovers}",
        started.elapsed()
    );
    assert!(leftovers <= 2, "{leftovers} temporary files were never cleaned up");
    assert!(seen[0] > 0 && seen[1] > 0, "kills landed on one file only: {seen:?}");
}
