// IFCNSegmentation
