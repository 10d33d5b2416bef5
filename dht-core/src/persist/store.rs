//! [`DataDir`]: the node's state on disk, in one redb file (`kadmium.redb`)
//! inside a locked directory. Opening checks that the file is a kadmium store
//! of a format this build reads; [`DataDir::load`] reads everything back at
//! start; [`DataDir::commit`] writes a batch of [`Change`]s in one fsync'ed
//! transaction, so a batch is on disk entirely or not at all. Nothing here
//! runs on the protocol's hot path: the driver batches changes and commits
//! them between iterations.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::codec::{self, PersistedRecord};
use super::dir::prepare_dir;
use super::error::{from_redb, PersistError};
use super::lock::DirLock;
use super::quiet_panic::catch_quietly;
use crate::contact::Contact;
use crate::id::{Key, NodeId, ID_LEN};

/// Name of the data file inside the data directory.
pub const DATA_FILE: &str = "kadmium.redb";

/// Version of the store's layout (tables, meta keys, record encoding). A
/// file of a newer version is refused; older ones are migrated on open.
pub const FORMAT_VERSION: u32 = 1;

/// Written on creation; a redb file without it was not written by kadmium.
const MAGIC: &[u8] = b"kadmium data store";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("kadmium_meta");
const RECORDS: TableDefinition<[u8; ID_LEN], &[u8]> = TableDefinition::new("kadmium_records");
/// Keyed by position, to keep the order the driver gave (most useful first).
const CONTACTS: TableDefinition<u32, &[u8]> = TableDefinition::new("kadmium_contacts");

const META_MAGIC: &str = "magic";
const META_FORMAT: &str = "format_version";
const META_NODE_ID: &str = "node_id";

/// redb's 2-phase commit: a second fsync per commit (measured: median commit
/// of one record 8–12 ms instead of 4–7 ms here) so that a damaged newest
/// commit is reported instead of rolled back. Off: one-phase commits are
/// crash safe (redb checksums the commit), acknowledged commits survive
/// SIGKILL either way (tests/persist_crash.rs), and damage found by the
/// integrity check at open is refused (see `DAMAGED`).
const TWO_PHASE_COMMIT: bool = false;

/// Meta key written when the integrity check at open had to roll the file
/// back: the file stays refused until an operator moves it aside, so a
/// restart cannot silently start from the rolled-back state.
const META_DAMAGED: &str = "damaged";

/// redb's page cache. The store is read once at start and written after;
/// a small cache is enough and keeps memory bounded.
const CACHE_BYTES: usize = 16 << 20;

/// One change to the stored state; a batch of them is one commit.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    SetNodeId(NodeId),
    /// Replaces every stored contact.
    SetContacts(Vec<Contact>),
    /// Inserts or replaces the record under `key`.
    PutRecord {
        key: Key,
        record: PersistedRecord,
    },
    RemoveRecord {
        key: Key,
    },
}

/// Everything a data directory held at [`DataDir::load`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `None` in a new data directory.
    pub node_id: Option<NodeId>,
    pub contacts: Vec<Contact>,
    /// Records still alive at load time, in key order.
    pub records: Vec<(Key, PersistedRecord)>,
    /// Records that had expired by load time; they were deleted from disk.
    pub expired_dropped: usize,
    /// Records whose value this build refuses (one Python peers cannot
    /// unpack, see `umsgpack_rules`, which earlier builds stored); deleted
    /// from disk, with a warning.
    pub refused_dropped: usize,
}

/// An open, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    file: PathBuf,
    /// `None` after a failed write: redb refuses all writes after an I/O
    /// error, so the next commit reopens the file (which repairs it).
    /// Declared before the lock so it is closed before the lock is released.
    db: Option<Database>,
    _lock: DirLock,
}

impl DataDir {
    /// Opens the data directory `dir`, creating it and an empty store if
    /// missing, and locks it for the life of the returned value.
    pub fn open(dir: &Path) -> Result<DataDir, PersistError> {
        prepare_dir(dir)?;
        let lock = DirLock::acquire(dir)?;
        let file = dir.join(DATA_FILE);
        let db = open_database(&file)?;
        Ok(DataDir {
            dir: dir.to_owned(),
            file,
            db: Some(db),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn data_file(&self) -> &Path {
        &self.file
    }

    /// Reads the whole store, dropping (from disk too) the records whose
    /// wall-clock expiry has passed.
    pub fn load(&mut self) -> Result<Snapshot, PersistError> {
        self.load_at(unix_now_ms())
    }

    /// [`DataDir::load`] with the wall clock read as `now_unix_ms`.
    pub fn load_at(&mut self, now_unix_ms: u64) -> Result<Snapshot, PersistError> {
        let file = self.file.clone();
        let (snapshot, dropped) = guarded(&file, || self.read_all(now_unix_ms))?;
        if !dropped.is_empty() {
            let removals: Vec<Change> = dropped
                .into_iter()
                .map(|key| Change::RemoveRecord { key })
                .collect();
            self.commit(&removals)?;
        }
        Ok(snapshot)
    }

    /// The live records, and the keys of those dropped (expired or refused).
    fn read_all(&mut self, now_unix_ms: u64) -> Result<(Snapshot, Vec<Key>), PersistError> {
        let file = self.file.clone();
        let db = self.database()?;
        let read = db
            .begin_read()
            .map_err(|e| from_redb::transaction(&file, e))?;
        let mut snapshot = Snapshot::default();

        let meta = read
            .open_table(META)
            .map_err(|e| from_redb::table(&file, e))?;
        if let Some(id) = meta
            .get(META_NODE_ID)
            .map_err(|e| from_redb::storage(&file, e))?
        {
            let id = NodeId::from_slice(id.value())
                .ok_or_else(|| PersistError::corrupt(&file, "node id is not 20 bytes"))?;
            snapshot.node_id = Some(id);
        }

        if let Some(contacts) = open_if_exists(&read, CONTACTS, &file)? {
            for entry in contacts.iter().map_err(|e| from_redb::storage(&file, e))? {
                let (_, bytes) = entry.map_err(|e| from_redb::storage(&file, e))?;
                let contact = codec::decode_contact(bytes.value())
                    .map_err(|e| PersistError::corrupt(&file, format!("contact: {e}")))?;
                snapshot.contacts.push(contact);
            }
        }

        let mut dropped = Vec::new();
        if let Some(records) = open_if_exists(&read, RECORDS, &file)? {
            for entry in records.iter().map_err(|e| from_redb::storage(&file, e))? {
                let (key, bytes) = entry.map_err(|e| from_redb::storage(&file, e))?;
                let key = NodeId(key.value());
                let record = codec::decode_record(bytes.value()).map_err(|e| {
                    PersistError::corrupt(&file, format!("record {}: {e}", key.to_hex()))
                })?;
                if record.expires_at_unix_ms <= now_unix_ms {
                    snapshot.expired_dropped += 1;
                    dropped.push(key);
                } else if let Some(why) = record.value.umsgpack_refusal() {
                    tracing::warn!(%key, "dropping a saved value peers refuse now: {why}");
                    snapshot.refused_dropped += 1;
                    dropped.push(key);
                } else {
                    snapshot.records.push((key, record));
                }
            }
        }
        Ok((snapshot, dropped))
    }

    /// Applies `changes` in order in one transaction, durable on disk when
    /// this returns `Ok`; on an error none of them is applied. An empty
    /// batch costs nothing.
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), PersistError> {
        if changes.is_empty() {
            return Ok(());
        }
        let file = self.file.clone();
        let result = guarded(&file, || self.write_batch(changes));
        if let Err(e) = &result {
            if e.needs_reopen() || matches!(e, PersistError::Corrupt { .. }) {
                self.db = None;
            }
        }
        result
    }

    fn write_batch(&mut self, changes: &[Change]) -> Result<(), PersistError> {
        let file = self.file.clone();
        let db = self.database()?;
        let mut write = db
            .begin_write()
            .map_err(|e| from_redb::transaction(&file, e))?;
        // Immediate is redb's default; said here because the driver's
        // acknowledgements rely on it: commit returns after fsync.
        write.set_durability(Durability::Immediate);
        write.set_two_phase_commit(TWO_PHASE_COMMIT);
        {
            let table_err = |e| from_redb::table(&file, e);
            let storage_err = |e| from_redb::storage(&file, e);
            let mut meta = write.open_table(META).map_err(table_err)?;
            let mut records = write.open_table(RECORDS).map_err(table_err)?;
            let mut contacts = write.open_table(CONTACTS).map_err(table_err)?;
            for change in changes {
                match change {
                    Change::SetNodeId(id) => {
                        meta.insert(META_NODE_ID, &id.as_bytes()[..])
                            .map_err(storage_err)?;
                    }
                    Change::SetContacts(list) => {
                        contacts.retain(|_, _| false).map_err(storage_err)?;
                        for (position, contact) in (0u32..).zip(list) {
                            let bytes = codec::encode_contact(contact);
                            contacts
                                .insert(position, bytes.as_slice())
                                .map_err(storage_err)?;
                        }
                    }
                    Change::PutRecord { key, record } => {
                        let bytes = codec::encode_record(record);
                        records
                            .insert(key.as_bytes(), bytes.as_slice())
                            .map_err(storage_err)?;
                    }
                    Change::RemoveRecord { key } => {
                        records.remove(key.as_bytes()).map_err(storage_err)?;
                    }
                }
            }
        }
        write.commit().map_err(|e| from_redb::commit(&file, e))
    }

    /// The open database, reopening it after a failed write.
    fn database(&mut self) -> Result<&Database, PersistError> {
        if self.db.is_none() {
            self.db = Some(open_database(&self.file)?);
        }
        self.db.as_ref().ok_or_else(|| PersistError::Io {
            path: self.file.clone(),
            source: io::Error::other("database not open"),
        })
    }
}

fn unix_now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Opens (or creates) the data file and checks its format.
fn open_database(file: &Path) -> Result<Database, PersistError> {
    if fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() == 0) {
        // redb treats an empty file as new; so do we (a crash during the very
        // first open leaves one), but say so in case it was truncated.
        tracing::warn!(file = %file.display(), "data file is empty: starting a new store");
    }
    guarded(file, || {
        let mut db = redb::Builder::new()
            .create_with_file_format_v3(true)
            .set_cache_size(CACHE_BYTES)
            .create(file)
            .map_err(|e| from_redb::database(file, e))?;
        // redb verifies checksums only when it repairs after a crash (which
        // `create` has just done if the last process died). Check every page
        // now, so damage is refused at start instead of read as data or
        // tripping redb later. A cleanly closed file that needs repair was
        // damaged; redb rolled it back to its previous commit.
        let intact = db
            .check_integrity()
            .map_err(|e| from_redb::database(file, e))?;
        check_format(file, &db)?;
        if !intact {
            mark_damaged(file, &db)?;
        }
        refuse_if_damaged(file, &db)?;
        Ok(db)
    })
}

/// Runs redb code over the file, turning a panic into [`PersistError::Corrupt`]:
/// redb trusts the pages of a file it considers cleanly closed and can panic
/// on damaged ones that passed its checks (a byte flipped in a header, a
/// truncated file). The panic hook stays silent for it: the caller reports
/// the error in its own words.
fn guarded<T>(file: &Path, f: impl FnOnce() -> Result<T, PersistError>) -> Result<T, PersistError> {
    catch_quietly(f).unwrap_or_else(|caught| {
        Err(PersistError::corrupt(
            file,
            format!("the database library failed reading it: {caught}"),
        ))
    })
}

/// Accepts a kadmium store of a version this build reads; writes the marker
/// into a file that has no tables at all (just created).
fn check_format(file: &Path, db: &Database) -> Result<(), PersistError> {
    let read = db
        .begin_read()
        .map_err(|e| from_redb::transaction(file, e))?;
    let is_empty = read
        .list_tables()
        .map_err(|e| from_redb::storage(file, e))?
        .next()
        .is_none()
        && read
            .list_multimap_tables()
            .map_err(|e| from_redb::storage(file, e))?
            .next()
            .is_none();
    if is_empty {
        drop(read);
        return initialize(file, db);
    }
    let Some(meta) = open_if_exists(&read, META, file)? else {
        return Err(PersistError::corrupt(
            file,
            "a redb file without kadmium's tables",
        ));
    };
    let storage_err = |e| from_redb::storage(file, e);
    let magic_ok = meta
        .get(META_MAGIC)
        .map_err(storage_err)?
        .is_some_and(|m| m.value() == MAGIC);
    if !magic_ok {
        return Err(PersistError::corrupt(file, "no kadmium store marker"));
    }
    let version = meta
        .get(META_FORMAT)
        .map_err(storage_err)?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| PersistError::corrupt(file, "no format version"))?;
    match version {
        FORMAT_VERSION => Ok(()),
        // Where a later format migrates older files, in one transaction.
        v if v > FORMAT_VERSION => Err(PersistError::UnsupportedVersion {
            path: file.to_owned(),
            found: v,
            supported: FORMAT_VERSION,
        }),
        v => Err(PersistError::corrupt(
            file,
            format!("format version {v}, which no kadmium wrote"),
        )),
    }
}

const DAMAGE_NOTE: &[u8] =
    b"checksums failed at open; redb rolled the file back to its previous commit";

fn mark_damaged(file: &Path, db: &Database) -> Result<(), PersistError> {
    let write = db
        .begin_write()
        .map_err(|e| from_redb::transaction(file, e))?;
    {
        let mut meta = write
            .open_table(META)
            .map_err(|e| from_redb::table(file, e))?;
        meta.insert(META_DAMAGED, DAMAGE_NOTE)
            .map_err(|e| from_redb::storage(file, e))?;
    }
    write.commit().map_err(|e| from_redb::commit(file, e))
}

fn refuse_if_damaged(file: &Path, db: &Database) -> Result<(), PersistError> {
    let read = db
        .begin_read()
        .map_err(|e| from_redb::transaction(file, e))?;
    let meta = read
        .open_table(META)
        .map_err(|e| from_redb::table(file, e))?;
    match meta
        .get(META_DAMAGED)
        .map_err(|e| from_redb::storage(file, e))?
    {
        Some(note) => Err(PersistError::corrupt(
            file,
            String::from_utf8_lossy(note.value()),
        )),
        None => Ok(()),
    }
}

fn initialize(file: &Path, db: &Database) -> Result<(), PersistError> {
    let mut write = db
        .begin_write()
        .map_err(|e| from_redb::transaction(file, e))?;
    write.set_two_phase_commit(TWO_PHASE_COMMIT);
    {
        let mut meta = write
            .open_table(META)
            .map_err(|e| from_redb::table(file, e))?;
        let storage_err = |e| from_redb::storage(file, e);
        meta.insert(META_MAGIC, MAGIC).map_err(storage_err)?;
        meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()[..])
            .map_err(storage_err)?;
        write
            .open_table(RECORDS)
            .map_err(|e| from_redb::table(file, e))?;
        write
            .open_table(CONTACTS)
            .map_err(|e| from_redb::table(file, e))?;
    }
    write.commit().map_err(|e| from_redb::commit(file, e))
}

/// Opens a table for reading; `None` if the file does not have it.
fn open_if_exists<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
    file: &Path,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, PersistError> {
    match read.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(from_redb::table(file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_can_move_to_a_blocking_thread() {
        // The driver commits off its event loop (on the node's disk thread).
        fn assert_send<T: Send + 'static>() {}
        assert_send::<DataDir>();
        assert_send::<Vec<Change>>();
    }
}
