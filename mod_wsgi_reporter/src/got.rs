//! Redirecting another shared object's calls to a named function: the
//! entries of its global offset table (GOT) that its relocation tables bind
//! to that name (`JUMP_SLOT` for PLT calls, `GLOB_DAT` for calls made
//! through the GOT directly) are pointed at a replacement.
//!
//! Used only after the fork (a private copy-on-write address space), on
//! mod_wsgi.so: in an MPM child before its worker threads run
//! (`ffi/embedded/`), and in a mod_wsgi daemon process before its worker
//! threads start (`ffi/daemon/`).
//! It must never write anything but the entries it found by name, and
//! never leave writable a page the loader had made read-only (RELRO).
//! All or nothing: if any of the names is missing, nothing is changed.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

#[cfg(target_arch = "x86_64")]
const R_JUMP_SLOT: u32 = 7;
#[cfg(target_arch = "x86_64")]
const R_GLOB_DAT: u32 = 6;
#[cfg(target_arch = "aarch64")]
const R_JUMP_SLOT: u32 = 1026;
#[cfg(target_arch = "aarch64")]
const R_GLOB_DAT: u32 = 1025;

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// Why nothing was redirected.
#[derive(Debug, PartialEq, Eq)]
pub enum GotError {
    /// Not x86_64 or aarch64 Linux.
    Unsupported,
    /// No loaded object contains the given address.
    NoObject,
    /// The object has no usable dynamic section.
    NoDynamic,
    /// The object makes no call to this function through its GOT.
    NotImported(&'static CStr),
    /// mprotect refused (errno).
    Protect(i32),
}

impl std::fmt::Display for GotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GotError::Unsupported => write!(f, "unsupported architecture"),
            GotError::NoObject => write!(f, "object not found"),
            GotError::NoDynamic => write!(f, "no dynamic section"),
            GotError::NotImported(n) => write!(f, "no GOT entry for {}", n.to_string_lossy()),
            GotError::Protect(e) => write!(f, "mprotect failed (errno {e})"),
        }
    }
}

/// A loaded object: its load bias and program headers.
struct Object {
    base: usize,
    phdr: *const libc::Elf64_Phdr,
    phnum: usize,
}

struct Search {
    addr: usize,
    found: Option<Object>,
}

/// # Safety
/// Only for `dl_iterate_phdr`: a live `info`, and `data` pointing at our [`Search`].
unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our Search.
    let (info, s) = unsafe { (&*info, &mut *(data as *mut Search)) };
    let base = info.dlpi_addr as usize;
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr has dlpi_phnum entries.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        let start = base.wrapping_add(ph.p_vaddr as usize);
        if ph.p_type == libc::PT_LOAD && s.addr >= start && s.addr - start < ph.p_memsz as usize {
            s.found = Some(Object {
                base,
                phdr: info.dlpi_phdr,
                phnum: info.dlpi_phnum as usize,
            });
            return 1;
        }
    }
    0
}

fn object_containing(addr: *const c_void) -> Option<Object> {
    let mut s = Search {
        addr: addr as usize,
        found: None,
    };
    // SAFETY: the callback only reads the infos it is given.
    unsafe { libc::dl_iterate_phdr(Some(each_object), &mut s as *mut Search as *mut c_void) };
    s.found
}

impl Object {
    fn phdrs(&self) -> &[libc::Elf64_Phdr] {
        // SAFETY: the loader's program headers of a loaded object (mapped
        // for as long as the object is loaded; mod_wsgi.so stays loaded for
        // the life of a daemon process).
        unsafe { std::slice::from_raw_parts(self.phdr, self.phnum) }
    }

    /// Addresses in the dynamic section are relocated in place by glibc on
    /// these architectures; accept both forms.
    fn addr(&self, v: u64) -> usize {
        let v = v as usize;
        if v < self.base {
            self.base + v
        } else {
            v
        }
    }

    /// GOT entries bound to `name`.
    fn slots(&self, name: &'static CStr) -> Result<Vec<*mut usize>, GotError> {
        let dynamic = self
            .phdrs()
            .iter()
            .find(|p| p.p_type == libc::PT_DYNAMIC)
            .ok_or(GotError::NoDynamic)?;
        let mut d = (self.base + dynamic.p_vaddr as usize) as *const Dyn;
        let (mut jmprel, mut pltrelsz, mut rela, mut relasz) = (0usize, 0usize, 0usize, 0usize);
        let (mut symtab, mut strtab, mut strsz, mut pltrel) = (0usize, 0usize, 0usize, DT_RELA);
        loop {
            // SAFETY: the dynamic section is an array ended by DT_NULL.
            let e = unsafe { &*d };
            match e.tag {
                DT_NULL => break,
                DT_JMPREL => jmprel = self.addr(e.val),
                DT_PLTRELSZ => pltrelsz = e.val as usize,
                DT_RELA => rela = self.addr(e.val),
                DT_RELASZ => relasz = e.val as usize,
                DT_SYMTAB => symtab = self.addr(e.val),
                DT_STRTAB => strtab = self.addr(e.val),
                DT_STRSZ => strsz = e.val as usize,
                DT_PLTREL => pltrel = e.val as i64,
                _ => {}
            }
            // SAFETY: still inside the array (DT_NULL not reached).
            d = unsafe { d.add(1) };
        }
        if symtab == 0 || strtab == 0 || pltrel != DT_RELA {
            return Err(GotError::NoDynamic);
        }
        let want = name.to_bytes_with_nul();
        let mut out = Vec::new();
        for (table, size) in [(jmprel, pltrelsz), (rela, relasz)] {
            if table == 0 {
                continue;
            }
            let n = size / std::mem::size_of::<Rela>();
            // SAFETY: DT_JMPREL/DT_RELA point at arrays of DT_*SZ bytes.
            let relocs = unsafe { std::slice::from_raw_parts(table as *const Rela, n) };
            for r in relocs {
                let (kind, sym) = (r.info as u32, (r.info >> 32) as usize);
                if (kind != R_JUMP_SLOT && kind != R_GLOB_DAT) || sym == 0 {
                    continue;
                }
                // SAFETY: a relocation's symbol index is within the table.
                let s = unsafe { &*(symtab as *const Sym).add(sym) };
                let off = s.name as usize;
                if off + want.len() > strsz {
                    continue;
                }
                // SAFETY: within the string table (checked just above).
                let got =
                    unsafe { std::slice::from_raw_parts((strtab + off) as *const u8, want.len()) };
                if got == want {
                    out.push((self.base + r.offset as usize) as *mut usize);
                }
            }
        }
        if out.is_empty() {
            return Err(GotError::NotImported(name));
        }
        Ok(out)
    }

    /// The pages glibc made read-only after relocation:
    /// [align_down(start), align_down(end)) of PT_GNU_RELRO.
    fn relro_pages(&self, page: usize) -> (usize, usize) {
        self.phdrs()
            .iter()
            .find(|p| p.p_type == libc::PT_GNU_RELRO)
            .map(|p| {
                let s = self.base + p.p_vaddr as usize;
                (s & !(page - 1), (s + p.p_memsz as usize) & !(page - 1))
            })
            .unwrap_or((0, 0))
    }
}

/// Points every GOT entry of the object that contains `inside` bound to
/// each `(name, replacement)` at the replacement. Returns how many entries
/// were changed. The original targets are not returned: callers call the
/// functions by their own (linked) names.
///
/// # Safety
/// Every call the object makes to `name` afterwards lands in the
/// replacement: each replacement must be the address of a function with
/// the C signature of `name`'s, and no other thread may be running code of
/// the object that reads those entries in a way a concurrent store can
/// confuse (an aligned word store: readers see the old or the new target).
pub unsafe fn redirect(
    inside: *const c_void,
    hooks: &[(&'static CStr, usize)],
) -> Result<usize, GotError> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(GotError::Unsupported);
    }
    let obj = object_containing(inside).ok_or(GotError::NoObject)?;
    let mut plan = Vec::new();
    for &(name, to) in hooks {
        for slot in obj.slots(name)? {
            plan.push((slot, to));
        }
    }
    // SAFETY: no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let (ro_start, ro_end) = obj.relro_pages(page);
    for &(slot, to) in &plan {
        let p = slot as usize & !(page - 1);
        let ro = p >= ro_start && p < ro_end;
        // SAFETY: p is the page of a GOT entry of a loaded object; it is
        // made writable only for the store and given back its read-only
        // protection at once (other threads only read it meanwhile).
        unsafe {
            if ro && libc::mprotect(p as *mut c_void, page, libc::PROT_READ | libc::PROT_WRITE) != 0
            {
                return Err(GotError::Protect(*libc::__errno_location()));
            }
            // An aligned word store: a concurrent caller sees the old or
            // the new target, never a torn one.
            (*(slot as *const AtomicUsize)).store(to, SeqCst);
            if ro {
                libc::mprotect(p as *mut c_void, page, libc::PROT_READ);
            }
        }
    }
    Ok(plan.len())
}

/// Redirects the calls an object makes to its own exported function
/// `name` (found with dlsym) to `hook`, and stores the function's address
/// in `real` first so the hook can call it. On failure `real` is left NULL
/// (the hook was never installed). Returns whether it was installed.
///
/// # Safety
/// As [`redirect`]: `hook` has the C signature of `name`.
pub unsafe fn redirect_export(
    name: &'static CStr,
    hook: usize,
    real: &std::sync::atomic::AtomicPtr<c_void>,
) -> bool {
    // SAFETY: dlsym with a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if f.is_null() {
        return false;
    }
    real.store(f, SeqCst);
    // SAFETY: the caller's contract.
    if unsafe { redirect(f, &[(name, hook)]) }.is_err() {
        real.store(std::ptr::null_mut(), SeqCst);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// The tests patch the same entry: one at a time.
    static PATCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    extern "C" fn fake_getppid() -> libc::pid_t {
        CALLS.fetch_add(1, SeqCst);
        4242
    }

    #[inline(never)]
    fn parent() -> libc::pid_t {
        // SAFETY: no preconditions.
        unsafe { libc::getppid() }
    }

    /// The test binary calls libc's getppid through its own GOT: redirect
    /// it and back, then check the calls went where the GOT said.
    #[test]
    fn redirects_a_got_entry_of_a_loaded_object() {
        let _one = PATCHING.lock().unwrap_or_else(|e| e.into_inner());
        let real = parent();
        let here = parent as *const c_void;
        // SAFETY: fake_getppid has getppid's signature; the test binary's
        // other threads do not call getppid (PATCHING).
        let n = unsafe { redirect(here, &[(c"getppid", fake_getppid as *const () as usize)]) }
            .expect("redirect");
        assert!(n >= 1);
        let faked = parent();
        // SAFETY: dlsym with a NUL-terminated name: libc's own getppid.
        let original = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"getppid".as_ptr()) } as usize;
        assert_ne!(original, 0);
        // SAFETY: libc's own getppid, back in its entry.
        let back = unsafe { redirect(here, &[(c"getppid", original)]) }.expect("restore");
        assert_eq!(back, n);
        assert_eq!(faked, 4242);
        assert!(CALLS.load(SeqCst) >= 1);
        assert_eq!(parent(), real);
    }

    #[test]
    fn all_or_nothing_when_a_name_is_missing() {
        let _one = PATCHING.lock().unwrap_or_else(|e| e.into_inner());
        let here = parent as *const c_void;
        // SAFETY: nothing is written: one name is missing (all or none).
        let e = unsafe {
            redirect(
                here,
                &[
                    (c"getppid", fake_getppid as *const () as usize),
                    (c"no_such_function_anywhere", 1),
                ],
            )
        };
        assert_eq!(e, Err(GotError::NotImported(c"no_such_function_anywhere")));
        assert_ne!(parent(), 4242);
    }

    #[test]
    fn an_address_outside_every_object_is_refused() {
        // SAFETY: nothing is written: no object contains the address.
        let e = unsafe { redirect(std::ptr::dangling::<c_void>(), &[(c"getppid", 1)]) };
        assert_eq!(e, Err(GotError::NoObject));
    }
}
