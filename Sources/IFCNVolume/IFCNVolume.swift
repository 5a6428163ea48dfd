// IFCNVolume
