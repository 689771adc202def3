using System.Diagnostics;
using Akka.Actor;
using Dnm.Cluster.Protocol;
using Dnm.Core.Evaluation;

namespace Dnm.Cluster.Coordination;

// Evaluating. When the plan asks for an evaluation (after an eval-every-th joint epoch, after SOM pre-training, at the
// end), the run holds at its step: the coordinator hands every member of the world every N-th block of the evaluation
// (EvaluationBlocks), each replica tallies its blocks on the same model bits, and the merged tally is the single process's
// evaluation exactly. The coordinator's replica only writes the metrics row, or at the end final-metrics.json, final.ckpt
// and the pictures: it embeds no evaluation sample. A member lost meanwhile leaves its blocks missing; the next world
// (the same state, sent to every rank) tallies what is missing.
public sealed partial class CoordinatorActor
{
    private const string EvaluationTimer = "evaluation";

    // The evaluation the run is held for, until its tally is complete.
    private PendingEvaluation? evaluation;

    private sealed class PendingEvaluation(bool final, int epoch, long step, EvaluationBlocks plan)
    {
        public bool Final { get; } = final;
        public int Epoch { get; } = epoch;
        public long Step { get; } = step;
        public EvaluationBlocks Plan { get; } = plan;
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public EvaluationTally? Merged { get; private set; }
        // The blocks asked of each rank of the current world and not answered yet.
        public Dictionary<int, int[]> Asked { get; } = new();

        public int[] Missing() =>
            Enumerable.Range(0, Plan.Count).Where(b => Merged is null || !Merged.Done(b)).ToArray();

        public void Add(EvaluationTally tally)
        {
            if (Merged is null) Merged = tally;
            else Merged.Merge(tally);
        }
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
        evaluation = new PendingEvaluation(final, epoch, state.GlobalStep, blocks);
    }

    /// <summary>The final outputs of a run whose config has no evaluation samples: never the case for a built replica.</summary>
    private void FinishWithoutEvaluation() =>
        Fail("the run has no evaluation samples, so its final metrics cannot be computed (is the test split empty?)");

    /// <summary>Asks every member of the world for its share of the blocks still missing.</summary>
    private void BeginEvaluation()
    {
        var e = evaluation!;
        var w = world!;
        var missing = e.Missing();
        e.Asked.Clear();
        for (var rank = 0; rank < w.Size; rank++)
        {
            var blocks = missing.Where((_, i) => i % w.Size == rank).ToArray();
            if (blocks.Length == 0) continue;
            e.Asked[rank] = blocks;
            w.Members[rank].Ref.Tell(new EvaluateBlocks(runId, w.Epoch, e.Step, e.Plan, blocks));
        }
        Become(Evaluating);
        // A block is one batch forward, cheaper than a step: a step's timeout per block a rank holds is generous.
        var most = e.Asked.Values.Max(b => b.Length);
        Timers.StartSingleTimer(EvaluationTimer, new EvaluationTimeout(w.Epoch, e.Step), settings.StepTimeout * (most + 1));
    }

    private bool IsCurrentEvaluation(long epoch, long step) =>
        evaluation is not null && world is not null && epoch == world.Epoch && step == evaluation.Step;

    /// <summary>The run holds at a step while the workers tally their blocks of an evaluation.</summary>
    private void Evaluating()
    {
        // A lost member's blocks stay missing: the next world tallies them.
        onMemberLost = (_, _) =>
        {
            Timers.Cancel(EvaluationTimer);
            Form();
        };
        Membership();
        Receive<BlocksEvaluated>(r => IsCurrentMember(r.RunId, r.MembershipEpoch, r.Rank) && IsCurrentEvaluation(r.MembershipEpoch, r.Step), r =>
        {
            var e = evaluation!;
            if (!e.Asked.Remove(r.Rank, out var asked)) return; // a duplicate
            EvaluationTally tally;
            try
            {
                tally = EvaluationTally.Read(r.Tally);
                if (tally.Blocks != e.Plan || !asked.All(tally.Done) || tally.Missing().Length != e.Plan.Count - asked.Length)
                    throw new InvalidDataException($"it tallied other blocks than the {asked.Length} it was asked for");
                e.Add(tally);
            }
            catch (Exception x) when (x is InvalidDataException or ArgumentException)
            {
                Drop(world!.Members[r.Rank], $"its evaluation tally after step {r.Step} is unusable: {x.Message}");
                return;
            }
            if (e.Asked.Count == 0) CompleteEvaluation();
        });
        Receive<BlocksFailed>(f => IsCurrentMember(f.RunId, f.MembershipEpoch, f.Rank) && IsCurrentEvaluation(f.MembershipEpoch, f.Step),
            f => Fail($"worker {world!.Members[f.Rank].Id} (rank {f.Rank}) could not evaluate the map after step {f.Step}: {f.Reason}"));
        Receive<EvaluationTimeout>(t => IsCurrentEvaluation(t.MembershipEpoch, t.Step), t =>
        {
            var late = evaluation!.Asked.Keys.Order().ToArray();
            foreach (var rank in late)
                Evict(world!.Members[rank], $"did not tally its evaluation blocks after step {t.Step} within the timeout");
            membershipChanged = true;
            Form();
        });
        Common();
    }

    private void CompleteEvaluation()
    {
        Timers.Cancel(EvaluationTimer);
        var e = evaluation!;
        evaluation = null;
        var tally = e.Merged!;
        if (e.Final)
        {
            CloseWorld();
            Become(Finishing);
            backend.FinishAsync(state, tally, e.Clock.Elapsed).PipeTo(Self, success: r => r, failure: x => new FinishFailed(x));
            return;
        }
        var at = state;
        backend.ReportEvaluationAsync(at, e.Epoch, tally, e.Clock.Elapsed)
            .PipeTo(Self, success: r => r, failure: x => new EvaluateFailed(at.GlobalStep, x));
        Advance();
    }
}
