//! A FUSE filesystem that forgets what was not synced, on demand: a power loss for the processes
//! using it.
//!
//! Everything lives in memory. Each file has its current contents and the contents it had at its
//! last `fsync`; each directory has its current entries and the entries it had at its last
//! `fsync` of the directory itself. [`LossyFs::power_loss`] makes every file and directory what it
//! last synced — strictly what POSIX promises, stricter than ext4's ordered journal (a created or
//! renamed name survives only if its directory was synced). `kill -9` cannot show a missing fsync
//! (the page cache survives the process); this can.
//!
//! Files are opened `direct_io` and every attribute and name is served with a zero TTL, so after a
//! power loss nothing the kernel cached hides what the filesystem forgot. File locks are left to
//! the kernel (RocksDB's `LOCK`). No hard links, symlinks or xattrs: a node needs none.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    consts::FOPEN_DIRECT_IO, FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    FUSE_ROOT_ID,
};
use libc::{EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY};

const TTL: Duration = Duration::ZERO;
/// Largest file the filesystem holds (RocksDB's files here are a few MiB).
const FILE_BYTES_MAX: u64 = 1 << 30;

struct Inode {
    dir: bool,
    data: Vec<u8>,
    /// The contents at the last fsync.
    synced: Vec<u8>,
    entries: BTreeMap<OsString, u64>,
    /// The entries at the last fsync of this directory.
    synced_entries: BTreeMap<OsString, u64>,
    perm: u16,
    mtime: SystemTime,
}

impl Inode {
    fn new(dir: bool, perm: u16) -> Inode {
        Inode {
            dir,
            data: Vec::new(),
            synced: Vec::new(),
            entries: BTreeMap::new(),
            synced_entries: BTreeMap::new(),
            perm,
            mtime: SystemTime::now(),
        }
    }
}

/// What the filesystem saw (the test prints it: proof the node synced, and how much it lost).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub writes: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub power_losses: u64,
    /// Bytes written but never synced, dropped by power losses.
    pub bytes_lost: u64,
}

#[derive(Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next: u64,
    stats: Stats,
}

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.inodes.get(&ino)?;
        let size = if n.dir { 4096 } else { n.data.len() as u64 };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: n.perm,
            nlink: if n.dir { 2 } else { 1 },
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, i32> {
        let p = self.inodes.get(&parent).ok_or(ENOENT)?;
        if !p.dir {
            return Err(ENOTDIR);
        }
        p.entries.get(name).copied().ok_or(ENOENT)
    }

    fn add(&mut self, parent: u64, name: &OsStr, dir: bool, perm: u16) -> Result<u64, i32> {
        if self.child(parent, name).is_ok() {
            return Err(EEXIST);
        }
        self.next += 1;
        let ino = self.next;
        self.inodes.insert(ino, Inode::new(dir, perm));
        let p = self.inodes.get_mut(&parent).ok_or(ENOENT)?;
        p.entries.insert(name.to_owned(), ino);
        p.mtime = SystemTime::now();
        Ok(ino)
    }

    /// Drops inodes no name (current or synced) refers to.
    fn collect(&mut self) {
        let mut live: std::collections::HashSet<u64> = [FUSE_ROOT_ID].into();
        for n in self.inodes.values() {
            live.extend(n.entries.values().chain(n.synced_entries.values()));
        }
        self.inodes.retain(|ino, _| live.contains(ino));
    }

    fn power_loss(&mut self) {
        let mut lost = 0u64;
        for n in self.inodes.values_mut() {
            if n.dir {
                n.entries = n.synced_entries.clone();
            } else {
                if n.data != n.synced {
                    lost += n.data.len().abs_diff(n.synced.len()).max(1) as u64;
                }
                n.data = n.synced.clone();
            }
        }
        self.collect();
        // Inodes only reachable through names that are gone now.
        let mut reachable: std::collections::HashSet<u64> = [FUSE_ROOT_ID].into();
        let mut stack = vec![FUSE_ROOT_ID];
        while let Some(i) = stack.pop() {
            if let Some(n) = self.inodes.get(&i) {
                for c in n.entries.values() {
                    if reachable.insert(*c) {
                        stack.push(*c);
                    }
                }
            }
        }
        self.inodes.retain(|ino, _| reachable.contains(ino));
        self.stats.power_losses += 1;
        self.stats.bytes_lost += lost;
    }
}

/// The filesystem; clone the handle to cause power losses while it is mounted.
#[derive(Clone)]
pub struct LossyFs(Arc<Mutex<State>>);

impl LossyFs {
    pub fn new() -> LossyFs {
        let mut s = State {
            next: FUSE_ROOT_ID,
            ..Default::default()
        };
        s.inodes.insert(FUSE_ROOT_ID, Inode::new(true, 0o755));
        LossyFs(Arc::new(Mutex::new(s)))
    }

    /// Every file and directory goes back to what it last synced.
    pub fn power_loss(&self) {
        self.0.lock().unwrap().power_loss();
    }

    pub fn stats(&self) -> Stats {
        self.0.lock().unwrap().stats
    }

    /// Writes to `to` (an empty directory on another filesystem) what a power loss at this instant
    /// would leave under `from` (a directory of this filesystem, relative to its root): every
    /// name its directory last synced, with the contents each file last synced. The writers are
    /// held off while it copies, so the image is of one instant; the filesystem itself forgets
    /// nothing (the processes using it carry on).
    pub fn synced_image(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind};
        fn copy(s: &State, ino: u64, to: &Path) -> std::io::Result<()> {
            let dir = s.inodes.get(&ino).ok_or(ErrorKind::NotFound)?;
            for (name, child) in &dir.synced_entries {
                let Some(c) = s.inodes.get(child) else {
                    continue;
                };
                let path = to.join(name);
                if c.dir {
                    std::fs::create_dir(&path)?;
                    copy(s, *child, &path)?;
                } else {
                    std::fs::write(&path, &c.synced)?;
                }
            }
            Ok(())
        }
        let s = self.0.lock().unwrap();
        let mut ino = FUSE_ROOT_ID;
        for part in from.components() {
            let std::path::Component::Normal(name) = part else {
                return Err(Error::new(ErrorKind::InvalidInput, "a plain relative path"));
            };
            let dir = s.inodes.get(&ino).ok_or(ErrorKind::NotFound)?;
            ino = *dir.synced_entries.get(name).ok_or(ErrorKind::NotFound)?;
        }
        copy(&s, ino, to)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

fn reply_entry(s: &State, ino: Result<u64, i32>, reply: ReplyEntry) {
    match ino.and_then(|i| s.attr(i).ok_or(ENOENT)) {
        Ok(a) => reply.entry(&TTL, &a, 0),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LossyFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        self.with(|s| reply_entry(s, s.child(parent, name), reply))
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        self.with(|s| match s.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(ENOENT),
        })
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        self.with(|s| {
            let Some(n) = s.inodes.get_mut(&ino) else {
                return reply.error(ENOENT);
            };
            if let Some(m) = mode {
                n.perm = (m & 0o7777) as u16;
            }
            if let Some(sz) = size {
                if n.dir {
                    return reply.error(EISDIR);
                }
                if sz > FILE_BYTES_MAX {
                    return reply.error(libc::EFBIG);
                }
                n.data.resize(sz as usize, 0);
                n.mtime = SystemTime::now();
            }
            reply.attr(&TTL, &s.attr(ino).expect("exists"))
        })
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.with(|s| {
            let ino = s.add(parent, name, true, (mode & 0o7777) as u16);
            reply_entry(s, ino, reply)
        })
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.with(|s| {
            let ino = match s.child(parent, name) {
                Ok(_) if flags & libc::O_EXCL != 0 => Err(EEXIST),
                Ok(i) => Ok(i),
                Err(_) => s.add(parent, name, false, (mode & 0o7777) as u16),
            };
            match ino.and_then(|i| {
                if flags & libc::O_TRUNC != 0 {
                    if let Some(n) = s.inodes.get_mut(&i) {
                        n.data.clear();
                    }
                }
                s.attr(i).ok_or(ENOENT)
            }) {
                Ok(a) => reply.created(&TTL, &a, 0, 0, FOPEN_DIRECT_IO),
                Err(e) => reply.error(e),
            }
        })
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.with(|s| {
            let Some(p) = s.inodes.get_mut(&parent) else {
                return reply.error(ENOENT);
            };
            if p.entries.remove(name).is_none() {
                return reply.error(ENOENT);
            }
            p.mtime = SystemTime::now();
            s.collect();
            reply.ok()
        })
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.with(|s| {
            let ino = match s.child(parent, name) {
                Ok(i) => i,
                Err(e) => return reply.error(e),
            };
            if s.inodes.get(&ino).is_some_and(|n| !n.entries.is_empty()) {
                return reply.error(ENOTEMPTY);
            }
            s.inodes
                .get_mut(&parent)
                .expect("parent")
                .entries
                .remove(name);
            s.collect();
            reply.ok()
        })
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        self.with(|s| {
            let ino = match s.child(parent, name) {
                Ok(i) => i,
                Err(e) => return reply.error(e),
            };
            if flags & libc::RENAME_NOREPLACE != 0 && s.child(newparent, newname).is_ok() {
                return reply.error(EEXIST);
            }
            if flags & !libc::RENAME_NOREPLACE != 0 {
                return reply.error(EINVAL);
            }
            if !s.inodes.get(&newparent).is_some_and(|n| n.dir) {
                return reply.error(ENOTDIR);
            }
            s.inodes
                .get_mut(&parent)
                .expect("parent")
                .entries
                .remove(name);
            s.inodes
                .get_mut(&newparent)
                .expect("new parent")
                .entries
                .insert(newname.to_owned(), ino);
            s.collect();
            reply.ok()
        })
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        self.with(|s| match s.inodes.get_mut(&ino) {
            Some(n) => {
                if flags & libc::O_TRUNC != 0 && !n.dir {
                    n.data.clear();
                }
                reply.opened(0, FOPEN_DIRECT_IO)
            }
            None => reply.error(ENOENT),
        })
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        self.with(|s| match s.inodes.get(&ino) {
            Some(n) if !n.dir => {
                let start = (offset.max(0) as usize).min(n.data.len());
                let end = (start + size as usize).min(n.data.len());
                reply.data(&n.data[start..end])
            }
            Some(_) => reply.error(EISDIR),
            None => reply.error(ENOENT),
        })
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        self.with(|s| {
            s.stats.writes += 1;
            match s.inodes.get_mut(&ino) {
                Some(n) if !n.dir => {
                    let start = offset.max(0) as usize;
                    let end = start + data.len();
                    if end as u64 > FILE_BYTES_MAX {
                        return reply.error(libc::EFBIG);
                    }
                    if n.data.len() < end {
                        n.data.resize(end, 0);
                    }
                    n.data[start..end].copy_from_slice(data);
                    n.mtime = SystemTime::now();
                    reply.written(data.len() as u32)
                }
                Some(_) => reply.error(EISDIR),
                None => reply.error(ENOENT),
            }
        })
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _owner: u64, reply: ReplyEmpty) {
        reply.ok() // close(2) promises nothing about durability
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.with(|s| {
            s.stats.fsyncs += 1;
            match s.inodes.get_mut(&ino) {
                Some(n) => {
                    n.synced = n.data.clone();
                    reply.ok()
                }
                None => reply.error(ENOENT),
            }
        })
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        self.with(|s| match s.inodes.get(&ino) {
            Some(n) if n.dir => reply.opened(0, 0),
            Some(_) => reply.error(ENOTDIR),
            None => reply.error(ENOENT),
        })
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        self.with(|s| {
            let Some(n) = s.inodes.get(&ino) else {
                return reply.error(ENOENT);
            };
            let mut all: Vec<(u64, FileType, OsString)> = vec![
                (ino, FileType::Directory, ".".into()),
                (ino, FileType::Directory, "..".into()),
            ];
            for (name, c) in &n.entries {
                let kind = if s.inodes.get(c).is_some_and(|x| x.dir) {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                all.push((*c, kind, name.clone()));
            }
            for (i, (c, kind, name)) in all.into_iter().enumerate().skip(offset.max(0) as usize) {
                if reply.add(c, i as i64 + 1, kind, name) {
                    break;
                }
            }
            reply.ok()
        })
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.with(|s| {
            s.stats.dir_fsyncs += 1;
            match s.inodes.get_mut(&ino) {
                Some(n) => {
                    n.synced_entries = n.entries.clone();
                    reply.ok()
                }
                None => reply.error(ENOENT),
            }
        })
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // Plenty of room (RocksDB checks free space).
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096)
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        self.with(|s| {
            if s.inodes.contains_key(&ino) {
                reply.ok()
            } else {
                reply.error(ENOENT)
            }
        })
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.with(|s| match s.inodes.get_mut(&ino) {
            Some(n) if !n.dir => {
                // Preallocation changes nothing visible unless it extends the size.
                let end = (offset.max(0) + length.max(0)) as u64;
                if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > n.data.len() as u64 {
                    if end > FILE_BYTES_MAX {
                        return reply.error(libc::EFBIG);
                    }
                    n.data.resize(end as usize, 0);
                }
                reply.ok()
            }
            Some(_) => reply.error(EISDIR),
            None => reply.error(ENOENT),
        })
    }
}
