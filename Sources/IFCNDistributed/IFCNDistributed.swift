// IFCNDistributed
