// SPDX-License-Identifier: MIT OR Apache-2.0
/* mmprep: where the driver's writable data ends (see data_begin.c). */
char mmprep_data_end[1] = { 1 };
char mmprep_bss_end[1];
