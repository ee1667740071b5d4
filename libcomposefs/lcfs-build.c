/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
#include "lcfs-internal.h"
