#include "ifcn_nifti.h"
#include <nifti2_io.h>
int ifcn_nifti_placeholder(void) { return 0; }
