// IFCNCompute
