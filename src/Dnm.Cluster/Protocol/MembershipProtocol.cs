using Dnm.Core.Data;

namespace Dnm.Cluster.Protocol;

// The membership conversation between a worker and the coordinator singleton. Every message is a small
// record of plain data: Akka.Remote carries these, tensors travel on the data plane
// (src/Dnm.Cluster/Transport). A run id names one coordinator incarnation: after a failover the new
// coordinator has a new one, and workers register again.

/// <summary>
/// A worker offers itself; sent to the singleton proxy until it is accepted (the coordinator may not exist yet).
/// <paramref name="Nonce"/> is new for every registration; only the actor the proxy delivered this to has seen it.
/// </summary>
public sealed record RegisterWorker(string WorkerId, int ProtocolVersion, string DnmVersion, string Device, Guid Nonce);

/// <summary>
/// The coordinator accepts a worker and hands it the run's config (the coordinator's flags win). It echoes the
/// registration's <paramref name="Nonce"/>: an answer without it does not come from the singleton, and the worker drops it.
/// </summary>
public sealed record RegistrationAccepted(Guid RunId, string ConfigJson, int SampleCount, ImageShape Shape, int StatsLength, Guid Nonce);

/// <summary>The coordinator refuses a worker for good (another protocol or Dnm version, another dataset or model); with the registration's nonce.</summary>
public sealed record RegistrationRejected(Guid RunId, string Reason, Guid Nonce);

/// <summary>
/// The worker opened the data and built its replica; what it has must equal the coordinator's, <paramref name="Dataset"/>
/// (the digest of the training files it read) included. <paramref name="PeerEndpoint"/> is the host:port of its own data-plane
/// listener, where the other workers of a world reach it for the reduction among workers (null: it takes part in none, and
/// its worlds reduce through the coordinator).
/// </summary>
public sealed record WorkerReady(Guid RunId, string WorkerId, int SampleCount, ImageShape Shape, int StatsLength, DatasetDigest? Dataset = null,
    string? PeerEndpoint = null);

/// <summary>The worker could not prepare (data missing, device unavailable); the reason is shown to the user.</summary>
public sealed record WorkerFailed(Guid RunId, string WorkerId, string Reason);

/// <summary>
/// Membership epoch <paramref name="MembershipEpoch"/> begins: connect to <paramref name="DataPlaneEndpoint"/>
/// (host:port) as <paramref name="Rank"/> of <paramref name="WorldSize"/>, with <paramref name="WorldId"/> as
/// the data-plane run id, then receive the full replica state (a State frame tagged <paramref name="StateStep"/>
/// of <paramref name="StateLength"/> floats) and import it with <paramref name="AdamSteps"/>. With
/// <paramref name="PeerEndpoints"/> (every rank's <see cref="WorkerReady.PeerEndpoint"/>, by rank) the world reduces its
/// statistics among the workers (recursive halving) wherever that keeps the fixed tree's bits: the worker connects to its
/// partners before it answers, and sends the coordinator only its slice of the sum.
/// </summary>
public sealed record FormWorld(Guid RunId, long MembershipEpoch, Guid WorldId, int Rank, int WorldSize, string DataPlaneEndpoint,
    long StateStep, long AdamSteps, int StateLength, int TargetsLength = 0, string[]? PeerEndpoints = null);

/// <summary>The worker holds the coordinator's state; the checksum proves it.</summary>
public sealed record WorldJoined(Guid RunId, long MembershipEpoch, int Rank, ulong Checksum);

/// <summary>The worker could not join the world (connect, state transfer or import failed).</summary>
public sealed record WorldJoinFailed(Guid RunId, long MembershipEpoch, int Rank, string Reason);

/// <summary>The coordinator removed this worker (it failed a step or a world); it may register again as a new worker.</summary>
public sealed record WorkerDropped(Guid RunId, string Reason);

/// <summary>
/// The run is over; sent to every worker and every node's monitor. A worker accepts it only from its coordinator, a
/// monitor only from the coordinator singleton (<see cref="CoordinatorIdentity"/>).
/// </summary>
public sealed record RunFinished(Guid RunId, long GlobalStep, string RunDirectory);

/// <summary>The run stopped on an error that retrying cannot fix (for example a replica checksum mismatch).</summary>
public sealed record RunFailed(Guid RunId, string Reason);
