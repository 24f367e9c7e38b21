package ipvssync

// Kernel is an engine whose kernel runs the sync daemons itself (the ipvs
// engine: the kernel's IPVS has its own master and backup threads, started
// with IPVS_CMD_NEW_DAEMON). The Manager hands its daemons to the kernel
// instead of running them; they talk the same wire format.
type Kernel interface {
	// StartSyncDaemon starts the kernel's daemon; the kernel fills in the
	// defaults of zero values.
	StartSyncDaemon(cfg Config) error
	// StopSyncDaemon stops the kernel's master or backup daemon.
	StopSyncDaemon(state string) error
	// SyncDaemons lists the kernel's running daemons, master first, with
	// the settings the kernel uses (it keeps no counters).
	SyncDaemons() ([]Config, error)
}
