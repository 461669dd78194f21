//! The allocator of a plugin instance. berth drops every instance after one call, so nothing a
//! call allocates needs to outlive it, and the general-purpose allocator Rust brings to
//! WebAssembly (with its free lists and its growth of memory a few pages at a time) does work
//! that a call never needs. This one hands out memory in order from the end of the module's own
//! data and grows memory in large steps; freeing or growing the newest block works in place
//! (so a growing `Vec` or `String` rarely copies), and other frees are left for the end of the
//! call. Everything a call allocates counts against `plugins.memory_limit_bytes` (32 MiB by
//! default), however much of it is freed again.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// Memory grows at least this many 64 KiB pages at a time.
const GROW_PAGES: usize = 16;
const PAGE: usize = 65536;

pub struct CallAllocator {
    /// The next free byte, and the end of memory (both 0 until the first allocation).
    next: Cell<usize>,
    end: Cell<usize>,
}

impl CallAllocator {
    pub const fn new() -> Self {
        Self {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// Room for `size` bytes aligned to `align`, growing memory when needed.
    fn take(&self, size: usize, align: usize) -> *mut u8 {
        if self.end.get() == 0 {
            extern "C" {
                static __heap_base: u8;
            }
            // SAFETY: the linker defines `__heap_base`, the first byte after data and stack.
            self.next.set(unsafe { &__heap_base as *const u8 as usize });
            self.end.set(core::arch::wasm32::memory_size(0) * PAGE);
        }
        let start = match self.next.get().checked_add(align - 1) {
            Some(n) => n & !(align - 1),
            None => return std::ptr::null_mut(),
        };
        let stop = match start.checked_add(size) {
            Some(stop) => stop,
            None => return std::ptr::null_mut(),
        };
        if stop > self.end.get() {
            let pages = ((stop - self.end.get()) + PAGE - 1) / PAGE;
            let previous = core::arch::wasm32::memory_grow(0, pages.max(GROW_PAGES));
            if previous == usize::MAX {
                // Refused (the call's memory limit): try for just what is needed.
                if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                    return std::ptr::null_mut();
                }
            }
            self.end.set(core::arch::wasm32::memory_size(0) * PAGE);
        }
        self.next.set(stop);
        start as *mut u8
    }
}

// SAFETY: a plugin instance has one thread.
unsafe impl Sync for CallAllocator {}

unsafe impl GlobalAlloc for CallAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.take(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The newest block gives its room back; any other waits for the end of the call.
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if ptr as usize + old == self.next.get() {
            // The newest block grows or shrinks in place.
            let stop = match (ptr as usize).checked_add(new_size) {
                Some(stop) => stop,
                None => return std::ptr::null_mut(),
            };
            if stop <= self.end.get() {
                self.next.set(stop);
                return ptr;
            }
            // Past the end of memory: memory grows, and the block with it, where it is.
            self.next.set(ptr as usize);
            let moved = self.take(new_size, layout.align());
            if moved.is_null() {
                self.next.set(ptr as usize + old);
            }
            debug_assert!(moved.is_null() || moved == ptr);
            return moved;
        }
        let moved = self.take(new_size, layout.align());
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(ptr, moved, old.min(new_size));
        }
        moved
    }
}
