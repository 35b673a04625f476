//! Installing the owned EncryptionConfiguration on a real file system: modes, the kept previous
//! version, writes skipped when nothing changed, and rollback.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use kms_mount::install::{
    DEFAULT_ENCRYPTION_CONFIG, InstallError, InstallOutcome, OnDisk, OwnedFile,
};

const FIRST: &[u8] = b"# first\nkind: EncryptionConfiguration\n";
const SECOND: &[u8] = b"# second\nkind: EncryptionConfiguration\n";

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owned(root: &Path) -> OwnedFile {
    OwnedFile::new(root, Path::new(DEFAULT_ENCRYPTION_CONFIG)).unwrap()
}

#[test]
fn first_install_creates_a_private_directory_and_file() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    assert_eq!(file.read().unwrap(), None);

    assert_eq!(file.install(FIRST).unwrap(), InstallOutcome::Created);

    let installed = root.path().join("etc/ucp-kms/encryption-config.yaml");
    assert_eq!(fs::read(&installed).unwrap(), FIRST);
    assert_eq!(mode(&installed), 0o600);
    assert_eq!(mode(installed.parent().unwrap()), 0o700);
    assert!(!file.previous_path().exists(), "nothing was replaced, so nothing is kept");
}

#[test]
fn the_same_bytes_are_not_written_again() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    let before = fs::metadata(file.path()).unwrap();

    // Long enough for any rewrite to show in the mtime.
    sleep(Duration::from_millis(20));
    assert_eq!(file.install(FIRST).unwrap(), InstallOutcome::Unchanged);

    let after = fs::metadata(file.path()).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert!(!file.previous_path().exists());
}

#[test]
fn unchanged_bytes_still_get_their_mode_back() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(file.path()).unwrap();

    sleep(Duration::from_millis(20));
    assert_eq!(file.install(FIRST).unwrap(), InstallOutcome::Unchanged);

    assert_eq!(mode(file.path()), 0o600);
    let after = fs::metadata(file.path()).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
}

#[test]
fn a_replacement_keeps_the_previous_version() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    let first_inode = fs::metadata(file.path()).unwrap().ino();

    assert_eq!(file.install(SECOND).unwrap(), InstallOutcome::Replaced);

    assert_eq!(fs::read(file.path()).unwrap(), SECOND);
    assert_eq!(fs::read(file.previous_path()).unwrap(), FIRST);
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(mode(file.previous_path()), 0o600);
    assert_ne!(fs::metadata(file.path()).unwrap().ino(), first_inode, "a new inode, renamed in");
    assert_eq!(file.read_previous().unwrap().as_deref(), Some(FIRST));
}

#[test]
fn a_hand_loosened_file_is_replaced_by_a_private_one() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o666)).unwrap();

    file.install(SECOND).unwrap();

    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(mode(file.previous_path()), 0o600);
}

#[test]
fn an_existing_directory_keeps_its_mode() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc/kubernetes/enc");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    let file = OwnedFile::new(root.path(), Path::new("/etc/kubernetes/enc/enc.yaml")).unwrap();

    file.install(FIRST).unwrap();

    assert_eq!(fs::read(dir.join("enc.yaml")).unwrap(), FIRST);
    assert_eq!(mode(&dir), 0o750);
}

#[test]
fn rollback_swaps_current_and_previous() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    file.install(SECOND).unwrap();

    assert_eq!(file.rollback().unwrap(), FIRST);
    assert_eq!(fs::read(file.path()).unwrap(), FIRST);
    assert_eq!(fs::read(file.previous_path()).unwrap(), SECOND);
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(mode(file.previous_path()), 0o600);

    // A second rollback undoes the first.
    assert_eq!(file.rollback().unwrap(), SECOND);
    assert_eq!(fs::read(file.path()).unwrap(), SECOND);
    assert_eq!(fs::read(file.previous_path()).unwrap(), FIRST);
}

#[test]
fn rollback_without_a_previous_version_fails_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    assert!(matches!(file.rollback(), Err(InstallError::NoPrevious(_))));

    file.install(FIRST).unwrap();
    let err = file.rollback().unwrap_err();
    assert!(err.to_string().starts_with("no previous version to roll back to"), "{err}");
    assert_eq!(fs::read(file.path()).unwrap(), FIRST);
}

#[test]
fn rollback_with_nothing_installed_restores_the_previous_version() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    file.install(SECOND).unwrap();
    fs::remove_file(file.path()).unwrap();

    assert_eq!(file.rollback().unwrap(), FIRST);
    assert_eq!(fs::read(file.path()).unwrap(), FIRST);
    assert!(!file.previous_path().exists());
}

#[test]
fn any_bytes_replaced_are_kept_even_unparseable_ones() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    fs::create_dir_all(file.dir()).unwrap();
    fs::write(file.path(), b"{{{ not yaml").unwrap();

    file.install(FIRST).unwrap();

    assert_eq!(fs::read(file.previous_path()).unwrap(), b"{{{ not yaml");
}

#[test]
fn oversized_and_unreadable_files_are_errors() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    fs::create_dir_all(file.dir()).unwrap();
    fs::write(file.path(), vec![b'#'; kms_model::MAX_DOCUMENT_BYTES + 1]).unwrap();
    assert!(matches!(file.read(), Err(InstallError::TooLarge { .. })));
    assert!(file.install(FIRST).is_err());

    fs::remove_file(file.path()).unwrap();
    fs::create_dir(file.path()).unwrap();
    let err = file.read().unwrap_err();
    assert!(matches!(err, InstallError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot read \""), "{err}");
}

#[test]
fn leftovers_of_a_killed_installer_are_removed_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    let leftover = file.dir().join(".encryption-config.yaml.ucp-kms-Ab12Cd.tmp");
    let leftover_previous = file.dir().join(".encryption-config.yaml.previous.ucp-kms-x9Y8z7.tmp");
    let leftover_record = file.dir().join("..encryption-config.yaml.ucp-kms.ucp-kms-Zz00Yy.tmp");
    let unrelated = file.dir().join(".encryption-config.yaml.backup");
    for path in [&leftover, &leftover_previous, &leftover_record, &unrelated] {
        fs::write(path, b"half a file").unwrap();
    }

    file.install(SECOND).unwrap();

    assert!(!leftover.exists());
    assert!(!leftover_previous.exists());
    assert!(!leftover_record.exists());
    assert!(unrelated.exists(), "only files named like the installer's own are removed");
}

#[test]
fn concurrent_installers_take_turns() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();

    std::thread::scope(|scope| {
        for content in [FIRST, SECOND] {
            let file = &file;
            scope.spawn(move || {
                for _ in 0..20 {
                    file.install(content).unwrap();
                }
            });
        }
    });

    let installed = file.read().unwrap().unwrap();
    assert!(installed == FIRST || installed == SECOND);
    let names: Vec<_> = fs::read_dir(file.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "only the file, its previous version and record remain: {names:?}");
    assert_eq!(file.read_record().unwrap().unwrap(), installed);
}

#[test]
fn restore_repairs_a_hand_edit_and_keeps_the_previous_version() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    file.install(SECOND).unwrap();

    fs::write(file.path(), b"# edited by hand\n").unwrap();
    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(file.restore(SECOND).unwrap(), InstallOutcome::Restored);
    assert_eq!(file.read().unwrap().unwrap(), SECOND);
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(file.read_previous().unwrap().unwrap(), FIRST, "the hand edit is no rollback copy");

    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(file.path()).unwrap();
    assert_eq!(file.restore(SECOND).unwrap(), InstallOutcome::Unchanged);
    assert_eq!(fs::metadata(file.path()).unwrap().ino(), before.ino());
    assert_eq!(mode(file.path()), 0o600);

    fs::remove_file(file.path()).unwrap();
    assert_eq!(file.restore(SECOND).unwrap(), InstallOutcome::Restored);
    assert_eq!(file.read().unwrap().unwrap(), SECOND);
    assert_eq!(file.read_previous().unwrap().unwrap(), FIRST);
}

#[test]
fn restore_creates_a_private_directory() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    assert_eq!(file.restore(FIRST).unwrap(), InstallOutcome::Restored);
    assert_eq!(mode(file.path()), 0o600);
    assert_eq!(mode(file.dir()), 0o700);
    assert!(!file.previous_path().exists());
}

#[test]
fn atomic_writes_have_exactly_the_mode_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("a.json"));
    kms_mount::install::write_atomically_in_order(&[(&a, b"1"), (&b, b"2")], 0o600).unwrap();
    kms_mount::install::write_atomically(&a, b"3", 0o640).unwrap();
    assert_eq!((fs::read(&a).unwrap(), mode(&a)), (b"3".to_vec(), 0o640));
    assert_eq!((fs::read(&b).unwrap(), mode(&b)), (b"2".to_vec(), 0o600));
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
}

const HAND_EDIT: &[u8] = b"# edited by hand\nkind: EncryptionConfiguration\n";

#[test]
fn the_record_is_hidden_private_and_written_with_every_install() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    assert_eq!(file.record_path(), file.dir().join(".encryption-config.yaml.ucp-kms"));
    assert_eq!(file.read_record().unwrap(), None);

    file.install(FIRST).unwrap();
    assert_eq!(file.read_record().unwrap().unwrap(), FIRST);
    assert_eq!(mode(file.record_path()), 0o600);
    file.install(SECOND).unwrap();
    assert_eq!(file.read_record().unwrap().unwrap(), SECOND);

    fs::set_permissions(file.record_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(file.record_path()).unwrap();
    sleep(Duration::from_millis(20));
    assert_eq!(file.install(SECOND).unwrap(), InstallOutcome::Unchanged);
    let after = fs::metadata(file.record_path()).unwrap();
    assert_eq!(after.ino(), before.ino(), "a no-op leaves the record alone");
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_eq!(mode(file.record_path()), 0o600);
}

#[test]
fn a_file_without_a_record_is_adopted_by_a_no_op_install() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    fs::create_dir_all(file.dir()).unwrap();
    fs::write(file.path(), FIRST).unwrap();
    let on_disk = file.read_on_disk().unwrap();
    assert_eq!(on_disk, OnDisk { installed: Some(FIRST.to_vec()), recorded: None });
    assert!(!on_disk.is_hand_edited());

    assert_eq!(file.install(FIRST).unwrap(), InstallOutcome::Unchanged);
    assert_eq!(file.read_record().unwrap().unwrap(), FIRST);
    assert!(!file.previous_path().exists());
}

#[test]
fn a_hand_edit_reads_as_one_and_is_never_the_rollback_copy() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    fs::write(file.path(), HAND_EDIT).unwrap();

    let on_disk = file.read_on_disk().unwrap();
    assert!(on_disk.is_hand_edited());
    assert_eq!(on_disk.trusted(), Some(FIRST));

    // A new file replaces the edit; the version kept for rollback is the one ucp-kms installed.
    assert_eq!(file.install(SECOND).unwrap(), InstallOutcome::Replaced);
    assert_eq!(file.read_previous().unwrap().unwrap(), FIRST);
    assert_eq!(file.read_record().unwrap().unwrap(), SECOND);
    assert!(!file.read_on_disk().unwrap().is_hand_edited());

    // Installing the recorded bytes over an edit is a repair: the previous version stays.
    fs::write(file.path(), HAND_EDIT).unwrap();
    assert_eq!(file.install(SECOND).unwrap(), InstallOutcome::Restored);
    assert_eq!(file.read().unwrap().unwrap(), SECOND);
    assert_eq!(file.read_previous().unwrap().unwrap(), FIRST);

    // A deletion is an edit too.
    fs::remove_file(file.path()).unwrap();
    let on_disk = file.read_on_disk().unwrap();
    assert!(on_disk.is_hand_edited());
    assert_eq!(on_disk.trusted(), Some(SECOND));
}

#[test]
fn restore_and_rollback_keep_the_record_in_step() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    file.install(SECOND).unwrap();

    fs::write(file.path(), HAND_EDIT).unwrap();
    file.restore(SECOND).unwrap();
    assert_eq!(file.read_record().unwrap().unwrap(), SECOND);
    assert!(!file.read_on_disk().unwrap().is_hand_edited());

    assert_eq!(file.rollback().unwrap(), FIRST);
    assert_eq!(file.read_record().unwrap().unwrap(), FIRST);
    assert!(!file.read_on_disk().unwrap().is_hand_edited());
    assert_eq!(file.rollback().unwrap(), SECOND);
    assert_eq!(file.read_record().unwrap().unwrap(), SECOND);

    // A restore of other bytes records them: they are what ucp-kms put there.
    file.restore(HAND_EDIT).unwrap();
    assert_eq!(file.read_record().unwrap().unwrap(), HAND_EDIT);
    assert_eq!(mode(file.record_path()), 0o600);
}

#[test]
fn an_install_stopped_before_its_record_reads_as_completed() {
    let root = tempfile::tempdir().unwrap();
    let file = owned(root.path());
    file.install(FIRST).unwrap();
    // What a kill between the file and the record leaves: the former file kept as the previous
    // version and still in the record, the new file installed.
    fs::write(file.previous_path(), FIRST).unwrap();
    fs::write(file.path(), SECOND).unwrap();

    let on_disk = file.read_on_disk().unwrap();
    assert!(!on_disk.is_hand_edited());
    assert_eq!(on_disk.trusted(), Some(SECOND));
    assert_eq!(on_disk.recorded.as_deref(), Some(SECOND));

    // The next install finishes the record and keeps the file the API server may run with.
    file.install(HAND_EDIT).unwrap();
    assert_eq!(file.read_previous().unwrap().unwrap(), SECOND);
    assert_eq!(file.read_record().unwrap().unwrap(), HAND_EDIT);
}
