//! The guests' file system: an in-memory tree seeded from a ustar archive (boot module `fs`).
//!
//! [`parse_ustar`] is a small pure reader: regular files and directories only, header checksums
//! checked, sizes bounded by the archive, the two zero blocks (or the end of the data) end it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

const BLOCK: usize = 512;

/// One member of a tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry<'a> {
    pub path: String,
    pub is_dir: bool,
    pub data: &'a [u8],
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = field
        .split(|b| *b == 0 || *b == b' ')
        .find(|s| !s.is_empty());
    let Some(text) = text else { return Some(0) };
    text.iter().try_fold(0u64, |acc, b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

fn cstr(field: &[u8]) -> Result<&str, String> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).map_err(|_| "a name is not UTF-8".to_string())
}

/// Parses a ustar (or old-style tar) archive.
pub fn parse_ustar(bytes: &[u8]) -> Result<Vec<TarEntry<'_>>, String> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at + BLOCK <= bytes.len() {
        let header = &bytes[at..at + BLOCK];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let stored =
            octal(&header[148..156]).ok_or(format!("header at {at}: bad checksum field"))?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(format!(
                "header at {at}: checksum {stored} does not match {sum}"
            ));
        }
        let size = octal(&header[124..136]).ok_or(format!("header at {at}: bad size field"))?;
        let name = cstr(&header[0..100])?;
        let prefix = if &header[257..262] == b"ustar" {
            cstr(&header[345..500])?
        } else {
            ""
        };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let data_start = at + BLOCK;
        let size = usize::try_from(size).map_err(|_| format!("{path}: size too large"))?;
        let data_end = data_start
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .ok_or(format!(
                "{path}: {size} bytes run past the end of the archive"
            ))?;
        match header[156] {
            b'0' | 0 => entries.push(TarEntry {
                path,
                is_dir: false,
                data: &bytes[data_start..data_end],
            }),
            b'5' => entries.push(TarEntry {
                path,
                is_dir: true,
                data: &[],
            }),
            other => {
                return Err(format!(
                    "{path}: unsupported entry type {:?}",
                    other as char
                ))
            }
        }
        at = data_start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(entries)
}

/// Normalises a path to `/a/b` form; refuses `..` and empty paths.
pub fn normalize(path: &str) -> Result<String, String> {
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(format!("path {path:?} contains \"..\""));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A path a guest's tool call names, normalised: it must be absolute. The gate judged the path
/// as written (its rules match `/etc/**` against the text, and a relative `etc/shadow` matches
/// nothing), so a relative path must not reach a file here either.
pub fn guest_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "path {path:?} is relative: tools take absolute paths"
        ));
    }
    // As Linux's PATH_MAX: a longer one would only make each lookup cost more (a write checks
    // every ancestor, each a comparison as long as the path).
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "path of {} bytes is longer than {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    // A line break in a name would add lines of its own to another guest's `list_dir`.
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(format!("path holds the control character {:?}", c));
    }
    normalize(path)
}

/// The longest path a guest's tool call may name, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Bytes all files and their paths together may hold after a guest's write (the heap also holds
/// the model).
pub const MAX_FS_BYTES: usize = 64 << 20;
/// Files the file system may hold after a guest's write.
pub const MAX_FS_FILES: usize = 4096;

/// The in-memory file system: files by normalised path; directories are implied by file paths
/// or recorded explicitly (empty directories from the archive). Guests' writes are bounded by
/// [`MAX_FS_BYTES`] and [`MAX_FS_FILES`] (a write past them fails; nothing is lost).
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeMap<String, ()>,
    /// The files' bytes and their paths' bytes, all together.
    bytes: usize,
}

impl MemFs {
    pub fn from_tar(bytes: &[u8]) -> Result<Self, String> {
        let mut fs = MemFs::default();
        for entry in parse_ustar(bytes)? {
            let path = normalize(&entry.path)?;
            if entry.is_dir {
                fs.dirs.insert(path, ());
            } else {
                fs.bytes += path.len() + entry.data.len();
                if let Some(old) = fs.files.insert(path.clone(), entry.data.to_vec()) {
                    fs.bytes -= path.len() + old.len();
                }
            }
        }
        Ok(fs)
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    pub fn read_file(&self, path: &str) -> Result<&[u8], String> {
        let path = guest_path(path)?;
        self.files
            .get(&path)
            .map(Vec::as_slice)
            .ok_or(format!("{path}: no such file"))
    }

    pub fn write_file(&mut self, path: &str, content: &[u8]) -> Result<(), String> {
        let path = guest_path(path)?;
        if path == "/" || self.is_dir(&path) {
            return Err(format!("{path}: is a directory"));
        }
        // A file cannot hold files: `/a/b` under a file `/a` would list `a` twice, as both.
        let mut ancestors = path.match_indices('/').skip(1).map(|(i, _)| &path[..i]);
        if let Some(file) = ancestors.find(|a| self.files.contains_key(*a)) {
            return Err(format!("{file}: not a directory"));
        }
        // A path's bytes count too: many files with long names are memory as well.
        let old = self.files.get(&path).map(|f| path.len() + f.len());
        let bytes = self.bytes - old.unwrap_or(0) + path.len() + content.len();
        let files = self.files.len() + usize::from(old.is_none());
        if bytes > MAX_FS_BYTES || files > MAX_FS_FILES {
            return Err(format!(
                "{path}: file system full ({MAX_FS_FILES} files, {MAX_FS_BYTES} bytes at most)"
            ));
        }
        self.files.insert(path, content.to_vec());
        self.bytes = bytes;
        Ok(())
    }

    pub fn delete_file(&mut self, path: &str) -> Result<(), String> {
        let path = guest_path(path)?;
        let old = self
            .files
            .remove(&path)
            .ok_or(format!("{path}: no such file"))?;
        self.bytes -= path.len() + old.len();
        Ok(())
    }

    fn is_dir(&self, path: &str) -> bool {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        path == "/"
            || self.dirs.contains_key(path)
            || self.files.keys().any(|f| f.starts_with(&prefix))
    }

    /// One entry per line, sorted; directories end in `/`.
    pub fn list_dir(&self, path: &str) -> Result<String, String> {
        let path = guest_path(path)?;
        if !self.is_dir(&path) {
            return Err(format!("{path}: no such directory"));
        }
        let prefix = if path == "/" {
            path.clone()
        } else {
            format!("{path}/")
        };
        // A set: many entries in one directory (4096 files) stay n log n, where a list's
        // `contains` made each listing quadratic.
        let mut names: BTreeSet<String> = BTreeSet::new();
        let all = self.files.keys().chain(self.dirs.keys());
        for full in all {
            let Some(rest) = full.strip_prefix(&prefix) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let name = match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None if self.dirs.contains_key(full) => format!("{rest}/"),
                None => rest.to_string(),
            };
            names.insert(name);
        }
        Ok(names.into_iter().collect::<Vec<_>>().join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn archive(members: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in members {
            out.extend(header(name, *kind, data.len()));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend([0u8; 2 * BLOCK]);
        out
    }

    #[test]
    fn reads_files_and_directories() {
        let tar = archive(&[
            ("workspace/", b'5', b""),
            ("workspace/README.md", b'0', b"hello"),
            ("workspace/src/main.rs", b'0', &[7u8; 600]),
            ("empty/", b'5', b""),
        ]);
        let entries = parse_ustar(&tar).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[1].data, b"hello");
        assert_eq!(entries[2].data.len(), 600);
        let mut fs = MemFs::from_tar(&tar).unwrap();
        assert_eq!(fs.read_file("/workspace/README.md").unwrap(), b"hello");
        assert_eq!(fs.list_dir("/").unwrap(), "empty/\nworkspace/");
        assert_eq!(fs.list_dir("/workspace").unwrap(), "README.md\nsrc/");
        fs.write_file("/workspace/notes.txt", b"n").unwrap();
        fs.delete_file("/workspace/README.md").unwrap();
        assert_eq!(fs.list_dir("/workspace/").unwrap(), "notes.txt\nsrc/");
        assert!(fs.read_file("/workspace/README.md").is_err());
        assert!(fs.list_dir("/nope").is_err());
        assert!(fs.write_file("/workspace", b"x").is_err());
        assert!(fs.read_file("/workspace/../etc/passwd").is_err());
        // Relative paths name nothing: the gate's rules judged them as written.
        for relative in ["workspace/notes.txt", "./workspace/notes.txt", ""] {
            let err = fs.read_file(relative).unwrap_err();
            assert!(err.contains("is relative"), "{err}");
            assert!(fs.list_dir(relative).is_err() && fs.delete_file(relative).is_err());
            assert!(fs.write_file(relative, b"x").is_err());
        }
        assert_eq!(fs.read_file("/workspace/notes.txt").unwrap(), b"n");
    }

    #[test]
    fn a_full_directory_lists_each_entry_once_in_order() {
        // A quarter of the file quota under 64 subdirectories of one directory: each subdirectory
        // named once (a list's `contains` per entry made a full directory quadratic).
        let mut fs = MemFs::default();
        let files = MAX_FS_FILES / 4;
        for i in 0..files {
            fs.write_file(&format!("/d/{:02}/{i}", i % 64), b"")
                .unwrap();
        }
        let listing = fs.list_dir("/d").unwrap();
        let want: Vec<String> = (0..64).map(|i| format!("{i:02}/")).collect();
        assert_eq!(listing, want.join("\n"));
        assert_eq!(fs.list_dir("/d/07").unwrap().lines().count(), files / 64);
    }

    #[test]
    fn bad_archives_are_errors() {
        let mut tar = archive(&[("a.txt", b'0', b"abc")]);
        tar[0] = b'b';
        assert!(parse_ustar(&tar).unwrap_err().contains("checksum"));
        let tar = archive(&[("a.txt", b'0', b"abc")]);
        assert!(parse_ustar(&tar[..BLOCK + 1]).is_err());
        let mut big = header("b.txt", b'0', 5000);
        big.extend([0u8; 512]);
        assert!(parse_ustar(&big).unwrap_err().contains("past the end"));
        let link = archive(&[("l", b'2', b"")]);
        assert!(parse_ustar(&link).unwrap_err().contains("unsupported"));
        assert!(parse_ustar(&[]).unwrap().is_empty());
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        let mut fs = MemFs::default();
        let err = fs.write_file("/a\nb/", b"x").unwrap_err();
        assert!(err.contains("control character '\\n'"), "{err}");
        assert!(fs.write_file("/x\u{7f}", b"x").is_err());
        assert!(fs.write_file("/caf\u{e9} \u{1f600}.txt", b"x").is_ok());
        assert_eq!(fs.list_dir("/").unwrap(), "caf\u{e9} \u{1f600}.txt");
    }

    #[test]
    fn paths_longer_than_path_max_are_refused() {
        let mut fs = MemFs::default();
        let long = format!("/{}", "a/".repeat(MAX_PATH_BYTES / 2));
        assert!(fs
            .write_file(&long, b"x")
            .unwrap_err()
            .contains("longer than 4096"));
        assert!(fs
            .read_file(&long)
            .unwrap_err()
            .contains("longer than 4096"));
        let fits = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        fs.write_file(&fits, b"x").unwrap();
    }

    #[test]
    fn a_file_cannot_hold_files() {
        let mut fs = MemFs::default();
        fs.write_file("/a", b"x").unwrap();
        assert_eq!(
            fs.write_file("/a/b", b"y"),
            Err("/a: not a directory".into())
        );
        assert_eq!(
            fs.write_file("/a/b/c", b"y"),
            Err("/a: not a directory".into())
        );
        fs.write_file("/d/e", b"z").unwrap();
        assert_eq!(fs.write_file("/d", b"w"), Err("/d: is a directory".into()));
        assert_eq!(fs.list_dir("/").unwrap(), "a\nd/");
    }

    #[test]
    fn writes_past_the_limits_fail_and_lose_nothing() {
        let mut fs = MemFs::default();
        // Four files whose bytes and paths ("/bigN", 5 bytes) fill the file system exactly.
        let chunk = vec![7u8; MAX_FS_BYTES / 4 - 5];
        for i in 0..4 {
            fs.write_file(&format!("/big{i}"), &chunk).unwrap();
        }
        let err = fs.write_file("/x", b"").unwrap_err();
        assert!(err.contains("file system full"), "{err}");
        assert!(fs.read_file("/x").is_err());
        // Rewriting a file in place counts only the difference; deleting frees its bytes.
        fs.write_file("/big0", &chunk).unwrap();
        let bigger = vec![0u8; chunk.len() + 1];
        assert!(fs.write_file("/big0", &bigger).is_err());
        assert_eq!(fs.read_file("/big0").unwrap().len(), chunk.len());
        fs.delete_file("/big3").unwrap();
        fs.write_file("/one-more", b"x").unwrap();
        // Paths count: with a 4000-byte path, content that fits alone does not fit.
        let free = MAX_FS_BYTES / 4 - 10;
        let long = format!("/{}", "n".repeat(3999));
        let content = vec![1u8; free - long.len() + 1];
        assert!(fs.write_file(&long, &content).unwrap_err().contains("full"));
        fs.write_file(&long, &content[1..]).unwrap();
        // The file count is bounded too.
        let mut fs = MemFs::default();
        for i in 0..MAX_FS_FILES {
            fs.write_file(&format!("/f{i}"), b"").unwrap();
        }
        assert!(fs.write_file("/f-last", b"").unwrap_err().contains("full"));
        fs.write_file("/f0", b"replaced").unwrap();
    }
}
