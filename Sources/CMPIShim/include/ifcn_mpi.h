#pragma once
int ifcn_mpi_placeholder(void);
