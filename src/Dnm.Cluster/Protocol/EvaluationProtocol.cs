using Dnm.Core.Evaluation;
using Dnm.Core.Training;

namespace Dnm.Cluster.Protocol;

// The block conversations: the evaluation, and SOM pre-training's embeddings (below).
//
// The evaluation conversation. When the plan asks for an evaluation after step Step (periodic or final), the
// coordinator holds the run at that step and sends each member of the world its blocks of the evaluation; every
// replica holds the same model bits, so each tallies its blocks exactly as one process would, and the coordinator
// merges the tallies (EvaluationTally) into the metrics. Blocks of a rank lost meanwhile go to the next world.

/// <summary>Limits of the evaluation conversation.</summary>
public static class EvaluationProtocol
{
    /// <summary>Akka's frame limit on every node (its default, 128 kB, is too small for a large map's tally).</summary>
    public const int MaxFrameBytes = 4 << 20;

    /// <summary>
    /// The largest tally a worker sends (its JSON envelope is base64, 4/3 of it): a sparse tally holds at most one
    /// (node, label) cell a sample, so this only binds for maps of hundreds of thousands of nodes with many classes.
    /// </summary>
    public const int MaxTallyBytes = 2 << 20;
}

/// <summary>Tally blocks <paramref name="Blocks"/> of <paramref name="Plan"/> on the replica as it stands after step <paramref name="Step"/>.</summary>
public sealed record EvaluateBlocks(Guid RunId, long MembershipEpoch, long Step, EvaluationBlocks Plan, int[] Blocks);

/// <summary>A rank's tally of its blocks (<see cref="EvaluationTally.ToBytes"/>).</summary>
public sealed record BlocksEvaluated(Guid RunId, long MembershipEpoch, long Step, int Rank, byte[] Tally);

/// <summary>The rank could not tally or embed its blocks (its data could not be read, a torch error).</summary>
public sealed record BlocksFailed(Guid RunId, long MembershipEpoch, long Step, int Rank, string Reason);

// SOM pre-training's embeddings. When autoencoder pre-training is over, the coordinator holds the run at its last step and
// sends each member its blocks of the fitted set (EmbeddingBlocks: every training sample, or the seeded subset of a large
// set, which every replica computes from the config); each replica embeds them on the same model bits and sends every
// block as it is made, a message each (at most EmbeddingBlocks.MaxBlockBytes). The coordinator assembles them
// (EmbeddingGather) and fits the map; a failure is BlocksFailed, as for the evaluation.

/// <summary>Embed blocks <paramref name="Blocks"/> of <paramref name="Plan"/> on the replica as it stands after step <paramref name="Step"/>.</summary>
public sealed record EmbedBlocks(Guid RunId, long MembershipEpoch, long Step, EmbeddingBlocks Plan, int[] Blocks);

/// <summary>One block's embeddings: <see cref="EmbeddingGather.Encode"/> of its rows.</summary>
public sealed record BlockEmbedded(Guid RunId, long MembershipEpoch, long Step, int Rank, int Block, byte[] Embeddings);
