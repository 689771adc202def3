using System.Diagnostics;
using Akka.Actor;
using Dnm.Cluster.Protocol;
using Dnm.Core.Evaluation;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

// Work the run holds at a committed step for, cut into blocks that the workers compute on the same model bits, every
// N-th block to each rank of the world; the coordinator's replica reads no image of it:
// - an evaluation (after an eval-every-th joint epoch, after SOM pre-training, at the end): each block is a tally
//   (EvaluationBlocks), and the merged tally is the single process's evaluation exactly; the replica then only writes the
//   metrics row, or at the end final-metrics.json, final.ckpt and the pictures;
// - SOM pre-training's embeddings (after autoencoder pre-training): each block is one batch's embeddings of the fitted set
//   (EmbeddingBlocks), sent as it is made; assembled, they are what the single process embeds itself, and the replica fits
//   the map (and makes the smoothed targets) from them.
// A member lost meanwhile leaves its blocks missing; the next world (the same state, sent to every rank) computes what is
// missing. A block of other than what was asked drops its worker; a worker that cannot compute its blocks fails the run.
public sealed partial class CoordinatorActor
{
    private const string BlocksTimer = "blocks";

    // The block work the run is held for, until every block is in.
    private BlockJob? blockJob;

    private abstract class BlockJob(long step, int count)
    {
        public long Step { get; } = step;
        public int Count { get; } = count;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        // The blocks asked of each rank of the current world and not answered yet.
        public Dictionary<int, HashSet<int>> Asked { get; } = new();
        /// <summary>What the workers do, for errors: "evaluate the map", "embed ...".</summary>
        public abstract string Work { get; }
        public abstract bool Done(int block);
        public int[] Missing() => Enumerable.Range(0, Count).Where(b => !Done(b)).ToArray();
        public abstract object Request(Guid runId, long membershipEpoch, int[] blocks);
    }

    private sealed class PendingEvaluation(bool final, int epoch, long step, EvaluationBlocks plan) : BlockJob(step, plan.Count)
    {
        public bool Final { get; } = final;
        public int Epoch { get; } = epoch;
        public EvaluationBlocks Plan { get; } = plan;
        public EvaluationTally? Merged { get; private set; }
        public override string Work => "evaluate the map";
        public override bool Done(int block) => Merged is not null && Merged.Done(block);
        public override object Request(Guid runId, long membershipEpoch, int[] blocks) => new EvaluateBlocks(runId, membershipEpoch, Step, Plan, blocks);

        public void Add(EvaluationTally tally)
        {
            if (Merged is null) Merged = tally;
            else Merged.Merge(tally);
        }
    }

    private sealed class PendingEmbedding(long step, EmbeddingBlocks plan) : BlockJob(step, plan.Count)
    {
        public EmbeddingGather Gather { get; } = new(plan);
        public override string Work => "embed SOM pre-training's samples";
        public override bool Done(int block) => Gather.Done(block);
        public override object Request(Guid runId, long membershipEpoch, int[] blocks) => new EmbedBlocks(runId, membershipEpoch, Step, Gather.Plan, blocks);
    }

    /// <summary>Holds the run for an evaluation of the state as it stands; <see cref="Advance"/> starts it once a world is formed.</summary>
    private void RequestEvaluation(bool final, int epoch)
    {
        var blocks = final ? replica.FinalEvaluation : replica.PeriodicEvaluation;
        if (blocks is null || blocks.EvaluatedSamples == 0)
        {
            if (final) FinishWithoutEvaluation();
            return;
        }
        blockJob = new PendingEvaluation(final, epoch, state.GlobalStep, blocks);
    }

    /// <summary>
    /// SOM pre-training is next: held for the workers' embeddings of its fitted set where it needs any, then run on the
    /// replica (<see cref="StartSomPretraining"/>).
    /// </summary>
    private void RequestSomPretraining()
    {
        if (replica.SomEmbedding is { Count: > 0 } plan) blockJob = new PendingEmbedding(state.GlobalStep, plan);
        else StartSomPretraining(null);
    }

    /// <summary>The final outputs of a run whose config has no evaluation samples: never the case for a built replica.</summary>
    private void FinishWithoutEvaluation() =>
        Fail("the run has no evaluation samples, so its final metrics cannot be computed (is the test split empty?)");

    /// <summary>Asks every member of the world for its share of the blocks still missing.</summary>
    private void BeginBlocks()
    {
        var job = blockJob!;
        var w = world!;
        var missing = job.Missing();
        job.Asked.Clear();
        for (var rank = 0; rank < w.Size; rank++)
        {
            var blocks = missing.Where((_, i) => i % w.Size == rank).ToArray();
            if (blocks.Length == 0) continue;
            job.Asked[rank] = [.. blocks];
            w.Members[rank].Ref.Tell(job.Request(runId, w.Epoch, blocks));
        }
        Become(ComputingBlocks);
        // A block is one batch forward, cheaper than a step: a step's timeout per block a rank holds is generous.
        var most = job.Asked.Values.Max(b => b.Count);
        Timers.StartSingleTimer(BlocksTimer, new BlocksTimeout(w.Epoch, job.Step), settings.StepTimeout * (most + 1));
    }

    private bool IsCurrentJob<TJob>(long epoch, long step) where TJob : BlockJob =>
        blockJob is TJob && world is not null && epoch == world.Epoch && step == blockJob.Step;

    /// <summary>The run holds at a step while the workers compute their blocks.</summary>
    private void ComputingBlocks()
    {
        // A lost member's blocks stay missing: the next world computes them.
        onMemberLost = (_, _) =>
        {
            Timers.Cancel(BlocksTimer);
            Form();
        };
        // So does an unreachable member's, at once, if it still owes blocks (one that answered is only left out of the next world).
        Membership(onUnreachable: rank =>
        {
            if (!blockJob!.Asked.ContainsKey(rank)) return;
            Timers.Cancel(BlocksTimer);
            Form();
        });
        Receive<BlocksEvaluated>(r => IsCurrentMember(r.RunId, r.MembershipEpoch, r.Rank) && IsCurrentJob<PendingEvaluation>(r.MembershipEpoch, r.Step), r =>
        {
            var e = (PendingEvaluation)blockJob!;
            if (!e.Asked.Remove(r.Rank, out var asked)) return; // a duplicate
            try
            {
                var tally = EvaluationTally.Read(r.Tally);
                if (tally.Blocks != e.Plan || !asked.All(tally.Done) || tally.Missing().Length != e.Plan.Count - asked.Count)
                    throw new InvalidDataException($"it tallied other blocks than the {asked.Count} it was asked for");
                e.Add(tally);
            }
            catch (Exception x) when (x is InvalidDataException or ArgumentException)
            {
                Drop(world!.Members[r.Rank], $"its evaluation tally after step {r.Step} is unusable: {x.Message}");
                return;
            }
            if (e.Asked.Count == 0) CompleteBlocks();
        });
        Receive<BlockEmbedded>(r => IsCurrentMember(r.RunId, r.MembershipEpoch, r.Rank) && IsCurrentJob<PendingEmbedding>(r.MembershipEpoch, r.Step), r =>
        {
            var e = (PendingEmbedding)blockJob!;
            try
            {
                if (!e.Asked.TryGetValue(r.Rank, out var asked) || !asked.Remove(r.Block))
                    throw new InvalidDataException($"it sent block {r.Block}, which it was not asked for");
                e.Gather.Add(r.Block, r.Embeddings);
                if (asked.Count == 0) e.Asked.Remove(r.Rank);
            }
            catch (InvalidDataException x)
            {
                Drop(world!.Members[r.Rank], $"its embeddings after step {r.Step} are unusable: {x.Message}");
                return;
            }
            if (e.Asked.Count == 0) CompleteBlocks();
        });
        Receive<BlocksFailed>(f => IsCurrentMember(f.RunId, f.MembershipEpoch, f.Rank) && IsCurrentJob<BlockJob>(f.MembershipEpoch, f.Step),
            f => Fail($"worker {world!.Members[f.Rank].Id} (rank {f.Rank}) could not {blockJob!.Work} after step {f.Step}: {f.Reason}"));
        Receive<BlocksTimeout>(t => IsCurrentJob<BlockJob>(t.MembershipEpoch, t.Step), t =>
        {
            var late = blockJob!.Asked.Keys.Order().ToArray();
            foreach (var rank in late)
                Evict(world!.Members[rank], $"did not {blockJob.Work} (its blocks after step {t.Step}) within the timeout");
            membershipChanged = true;
            Form();
        });
        // The state is a committed step's: the blocks are abandoned, and a resumed run computes them again.
        Receive<SuspendRun>(_ =>
        {
            Timers.Cancel(BlocksTimer);
            blockJob = null;
            SuspendNow();
        });
        Common();
    }

    private void CompleteBlocks()
    {
        Timers.Cancel(BlocksTimer);
        var job = blockJob!;
        blockJob = null;
        switch (job)
        {
            case PendingEmbedding e:
                var plan = e.Gather.Plan;
                observer.OnMessage($"SOM pre-training's embeddings: {plan.Samples} samples in {plan.Count} blocks from the workers " +
                                   $"({(long)plan.Samples * plan.Dim * sizeof(float) / 1e6:F1} MB, {e.Clock.Elapsed.TotalSeconds:F1} s)");
                StartSomPretraining(e.Gather);
                return;
            case PendingEvaluation { Final: true } e:
                CloseWorld();
                Become(Finishing);
                backend.FinishAsync(state, e.Merged!, e.Clock.Elapsed).PipeTo(Self, success: r => r, failure: x => new FinishFailed(x));
                return;
            case PendingEvaluation e:
                var at = state;
                backend.ReportEvaluationAsync(at, e.Epoch, e.Merged!, e.Clock.Elapsed)
                    .PipeTo(Self, success: r => r, failure: x => new EvaluateFailed(at.GlobalStep, x));
                Advance();
                return;
        }
    }

    /// <summary>SOM pre-training on the replica, from the workers' <paramref name="embeddings"/> (null: it needs none).</summary>
    private void StartSomPretraining(EmbeddingGather? embeddings)
    {
        // The workers are idle meanwhile; the next world gives them the fitted W with the full state.
        CloseWorld();
        Become(SomPretraining);
        observer.OnMessage("SOM pre-training on the coordinator's replica");
        backend.PretrainSomAsync(state, embeddings).PipeTo(Self, success: r => r, failure: e => new SomPretrainFailed(e));
    }
}
