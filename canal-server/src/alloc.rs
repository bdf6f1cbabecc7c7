//! Memory settings of the binaries that run the parser (canal-server, otter-node).

/// Stops transparent huge pages for this process. mimalloc asks for them (`MADV_HUGEPAGE`), and
/// with THP `always` the kernel uses them anyway: then every page mimalloc gives back and touches
/// again is faulted in as a zeroed 2 MiB page. In the e2e bench with `canal-client tail` that
/// zeroing was 12–14% of canal-server's CPU (`clear_page_erms` under
/// `do_huge_pmd_anonymous_page`), in the pipeline bench 10% of otter-node's; with 4 KiB pages
/// it is gone. Call it first thing in `main`; failing is harmless (the default stays). Linux
/// only; elsewhere there is nothing to do.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
