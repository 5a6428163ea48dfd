#pragma once
int ifcn_nifti_placeholder(void);
