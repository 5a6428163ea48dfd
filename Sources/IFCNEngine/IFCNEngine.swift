// IFCNEngine
