using Akka.Actor;
using Dnm.Core.Training;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Coordination;

// Forming a world: a new membership epoch, ranks in registration order, a fresh data-plane listener and
// the replica's full state sent to every rank. Every world starts from the coordinator's state, so a
// joining worker, a worker that missed a broadcast and a rollback after failover are the same case.
public sealed partial class CoordinatorActor
{
    private World? world;
    private long membershipEpoch;
    private WorldSynced? synced;
    private readonly Dictionary<int, ulong> joinAcks = new();
    private int attempts;
    private StarOnly? starOnly;

    private void Form()
    {
        CloseWorld();
        var members = workers.Values.Where(Eligible).OrderBy(w => w.Sequence).ToArray();
        if (members.Length < Needed)
        {
            EnterGathering();
            return;
        }
        // Every rank must get samples: a world larger than the global batch leaves the extra workers idle.
        if (members.Length > replica.Config.BatchSize) members = members[..replica.Config.BatchSize];
        var epoch = ++membershipEpoch;
        var worldId = Guid.NewGuid();
        // Among the workers only where it may apply at all (a power-of-two world whose every member has a listener); each step
        // then checks that every rank holds one block of the tree (Transport.RecursiveHalvingReducer.Applies).
        if (starOnly is not null && !starOnly.Members.SetEquals(members)) starOnly = null;
        var amongWorkers = StatisticsReductionThreshold.AmongWorkers(settings.Reduction, replica.StatsLength) && Transport.RecursiveHalvingReducer.IsPowerOfTwoWorld(members.Length)
                           && members.All(m => m.PeerEndpoint is not null);
        var peers = amongWorkers && starOnly is null ? members.Select(m => m.PeerEndpoint!).ToArray() : null;
        string endpoint;
        try
        {
            endpoint = backend.OpenWorld(epoch, worldId, members.Length, amongWorkers: peers is not null);
        }
        catch (Exception e)
        {
            Fail($"the coordinator could not open its data-plane listener: {e.Message}");
            return;
        }
        world = new World(epoch, worldId, members, AmongWorkers: peers is not null);
        stepTracer = telemetry.Tracer(Hosting.ClusterTelemetry.CoordinatorRole, runId, 0, members.Length);
        metrics?.SetWorkers(members.Length);
        membershipChanged = false;
        formedIn = null;
        worldSteps = 0;
        worldClock.Restart();
        synced = null;
        joinAcks.Clear();
        Become(Forming);
        backend.SyncWorldAsync(epoch, state.GlobalStep, settings.WorldTimeout)
            .PipeTo(Self, success: s => s, failure: e => new WorldSyncFailed(epoch, e));
        for (var rank = 0; rank < members.Length; rank++)
            members[rank].Ref.Tell(new FormWorld(runId, epoch, worldId, rank, members.Length, endpoint, state.GlobalStep, adamSteps, replica.StateLength, targetsLength,
                peers));
        // A little longer than the backend's own accept timeout, so its more precise error usually arrives first.
        Timers.StartSingleTimer(WorldTimer, new WorldTimeout(epoch), settings.WorldTimeout + TimeSpan.FromSeconds(2));
        var unreachableReady = workers.Values.Where(w => w.Ready && unreachable.Contains(w.Node)).Select(w => w.Id).ToArray();
        observer.OnMessage($"membership epoch {epoch}: {members.Length} worker(s) [{string.Join(", ", members.Select(m => m.Id))}], data plane {endpoint}" +
                           (peers is not null ? ", statistics summed among the workers (recursive halving)"
                               : amongWorkers ? $", statistics summed through the coordinator (after {starOnly!.Reason})" : "") +
                           (unreachableReady.Length == 0 ? "" : $"; left out, unreachable: {string.Join(", ", unreachableReady)}"));
        // Ranks take whole micro-batches (the unit whose result does not depend on the world size): more ranks than a
        // batch has micro-batches leave some idle. Said once per world, with the fix.
        var microBatches = new MicroBatches(replica.MicroBatch).Count(replica.Config.BatchSize);
        if (members.Length > microBatches)
            observer.OnMessage($"warning: a batch of {replica.Config.BatchSize} is {microBatches} micro-batch(es) of at most {replica.MicroBatch} samples, " +
                               $"so {members.Length - microBatches} of the {members.Length} workers stay idle; --micro-batch " +
                               $"{Math.Max(1, replica.Config.BatchSize / members.Length)} gives every worker a share (the result is the same whatever the worker count)");
    }

    /// <summary>A world forms: the replica's state goes to every rank, and each answers with its checksum.</summary>
    private void Forming()
    {
        // A member lost while the world forms: form another without it. So for one the failure detector reports unreachable:
        // it would not connect (or not acknowledge) before the split-brain resolver downs it seconds later.
        onMemberLost = (_, _) => Form();
        Membership(onUnreachable: _ => Form());
        Receive<WorldSynced>(s => s.MembershipEpoch == world?.Epoch, s =>
        {
            synced = s;
            TryFinishForming();
        });
        Receive<WorldJoined>(j => IsCurrentMember(j.RunId, j.MembershipEpoch, j.Rank), j =>
        {
            joinAcks[j.Rank] = j.Checksum;
            TryFinishForming();
        });
        Receive<WorldJoinFailed>(f => IsCurrentMember(f.RunId, f.MembershipEpoch, f.Rank),
            f => Drop(world!.Members[f.Rank], $"could not join membership epoch {f.MembershipEpoch}: {f.Reason}"));
        Receive<WorldSyncFailed>(f => f.MembershipEpoch == world?.Epoch, f =>
        {
            if (f.Error is RankFailureException r && r.Rank < world!.Size) Drop(world.Members[r.Rank], r.Message);
            else if (f.Error is RanksMissingException m)
                EvictSilent(m.Ranks, $"did not connect to the data plane of membership epoch {f.MembershipEpoch} within {settings.WorldTimeout.TotalSeconds:0}s",
                    $"forming membership epoch {f.MembershipEpoch} failed: {m.Message}");
            else Retry($"forming membership epoch {f.MembershipEpoch} failed: {f.Error.Message}");
        });
        Receive<WorldTimeout>(t => t.MembershipEpoch == world?.Epoch, t =>
            EvictSilent(Enumerable.Range(0, world!.Size).Where(r => !joinAcks.ContainsKey(r)).ToArray(),
                $"did not join membership epoch {t.MembershipEpoch} within {settings.WorldTimeout.TotalSeconds:0}s",
                $"membership epoch {t.MembershipEpoch} did not form within {settings.WorldTimeout.TotalSeconds:0}s"));
        Receive<SuspendRun>(_ => SuspendNow());
        Common();
    }

    /// <summary>
    /// Some ranks of the forming world never connected or acknowledged: they are evicted (named in the log) and the next world
    /// forms without them, rather than the same failing world again. Blamed only if others managed: when every rank is
    /// silent the fault may well be ours, and the attempt counts (<see cref="Retry"/>).
    /// </summary>
    private void EvictSilent(IReadOnlyList<int> silent, string why, string failure)
    {
        if (silent.Count == 0 || silent.Count >= world!.Size)
        {
            Retry(failure);
            return;
        }
        foreach (var rank in silent.Where(r => r < world.Size)) Evict(world.Members[rank], why);
        membershipChanged = true;
        Form();
    }

    private void TryFinishForming()
    {
        if (world is null || synced is null || joinAcks.Count < world.Size) return;
        foreach (var (rank, checksum) in joinAcks)
        {
            if (checksum != synced.Checksum)
            {
                Fail($"replica checksum mismatch after the state transfer of membership epoch {world.Epoch}: rank {rank} " +
                     $"(worker {world.Members[rank].Id}) has 0x{checksum:X16}, the coordinator 0x{synced.Checksum:X16}");
                return;
            }
        }
        Timers.Cancel(WorldTimer);
        started = true;
        formedIn = worldClock.Elapsed;
        Advance();
    }

    /// <summary>A failure no lost worker explains: try again, up to <see cref="CoordinatorSettings.MaxAttempts"/> times in a row.</summary>
    private void Retry(string reason)
    {
        attempts++;
        observer.OnMessage($"{reason}; attempt {attempts} of {settings.MaxAttempts}");
        if (attempts >= settings.MaxAttempts)
        {
            Fail($"{reason} ({attempts} attempts in a row failed)");
            return;
        }
        Form();
    }

    /// <summary>The message comes from the worker holding <paramref name="rank"/> in the current world.</summary>
    private bool IsCurrentMember(Guid fromRun, long epoch, int rank) =>
        fromRun == runId && world is not null && epoch == world.Epoch && rank >= 0 && rank < world.Size
        && world.Members[rank].Ref.Equals(Sender) && workers.ContainsKey(Sender);

    private void CloseWorld()
    {
        Timers.Cancel(WorldTimer);
        Timers.Cancel(StepTimer);
        Timers.Cancel(AmongWorkersTimer);
        round?.Trace.Dispose();
        round = null;
        if (world is null) return;
        world = null;
        backend.CloseWorld();
    }
}
