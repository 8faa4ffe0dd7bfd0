// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * mmprep: where the driver's writable data starts. Linked right before the driver's unit (and
 * data_end.c right after it), so that the linker, which lays out each output section file by
 * file in command-line order, puts the driver's own .data and .bss between the two markers.
 * The shim compares those bytes around mmap_prepare (the HOWTO: no state may change there).
 */
char mmprep_data_begin[1] = { 1 };
char mmprep_bss_begin[1];
