// IFCNTraining
