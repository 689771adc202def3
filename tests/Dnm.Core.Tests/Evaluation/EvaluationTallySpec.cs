using Dnm.Core.Evaluation;
using Dnm.Core.Som;
using Dnm.Core.Tests.Training;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Evaluation;

public class EvaluationTallySpec
{
    [Fact]
    public void Blocks_split_reference_then_evaluated_samples_and_every_rank_owns_every_Nth()
    {
        var blocks = new EvaluationBlocks(ReferenceSamples: 10, EvaluatedSamples: 7, BlockSize: 4);
        Assert.Equal((3, 2, 5), (blocks.ReferenceBlocks, blocks.EvaluatedBlocks, blocks.Count));
        Assert.Equal((true, 8, 2), blocks[2]);
        Assert.Equal((false, 0, 4), blocks[3]);
        Assert.Equal((false, 4, 3), blocks[4]);
        Assert.Equal([1, 4], blocks.Owned(1, 3));
        Assert.Equal(Enumerable.Range(0, 5), Enumerable.Range(0, 3).SelectMany(r => blocks.Owned(r, 3)).Order());
    }

    [Fact]
    public void A_hand_made_tally_gives_the_same_numbers_as_the_per_sample_metrics()
    {
        // 2x2 lattice, 3 classes; the last evaluated sample has no label (-1).
        int[] refBmu = [0, 0, 1, 3, 3, 3], refLabels = [2, 2, 0, 1, 1, 0];
        int[] bmu = [0, 1, 3, 2, 0], second = [1, 3, 0, 3, 2], labels = [2, 0, 1, 1, -1];
        float[] dist = [0.5f, 1.5f, 2f, 0.25f, 1f];
        var blocks = new EvaluationBlocks(6, 5, 3);
        var tally = new EvaluationTally(blocks, nodes: 4, classes: 3);
        tally.AddReference(0, refBmu.AsSpan(0, 3), refLabels.AsSpan(0, 3));
        tally.AddReference(1, refBmu.AsSpan(3), refLabels.AsSpan(3));
        var grid = new MapGrid(2, 2);
        bool Adjacent(int a, int b) => grid.Adjacent(a, b);
        tally.AddEvaluated(2, bmu.AsSpan(0, 3), second.AsSpan(0, 3), dist.AsSpan(0, 3), labels.AsSpan(0, 3), 6.0, Adjacent);
        tally.AddEvaluated(3, bmu.AsSpan(3), second.AsSpan(3), dist.AsSpan(3), labels.AsSpan(3), 2.0, Adjacent);

        var labelMap = MapMetrics.LabelMap(refBmu, refLabels, 4, 3);
        Assert.Equal(labelMap, tally.LabelMap(referenceHasLabels: true));
        Assert.Equal([2, 0, -1, 1], labelMap);
        Assert.Equal([2L, 1, 0, 3], tally.Hits());
        var q = tally.Quality(referenceHasLabels: true, evaluatedHasLabels: true, pixels: 4);
        Assert.Equal(MapMetrics.Purity(bmu, labels, labelMap), q.Purity);
        Assert.Equal(3.0 / 5, q.Purity);   // samples 0, 1, 2 match; 3 lands on an unlabelled node; 4 has no label
        Assert.Equal(MapMetrics.Nmi(bmu, labels), q.Nmi!.Value, 12);
        Assert.Equal(MapMetrics.TopographicError(bmu, second, grid), q.Te);
        Assert.Equal(5.25 / 5, q.Qe, 12);
        Assert.Equal(8.0 / (5 * 4), q.ReconMse, 12);
        Assert.Null(tally.Quality(referenceHasLabels: false, evaluatedHasLabels: true, pixels: 4).Purity);
        Assert.Null(q.Accuracy); // no prototypes given
    }

    [Fact]
    public void The_accuracy_classifier_learns_from_the_labelled_reference_samples_only_and_fills_empty_nodes_from_the_nearest()
    {
        // Reference samples 0..3 on a 2x2 lattice; only samples 1 and 3 are labelled (a semi-supervised run's 50 %).
        int[] refBmu = [0, 0, 1, 2], refLabels = [1, 0, 1, 1];
        int[] bmu = [0, 1, 2, 3], second = [1, 0, 3, 2], labels = [0, 1, 1, 1];
        float[] prototypes = [0, 0, 1, 0, 0, 1, 0, 1.1f]; // node 3 is nearest node 2
        var tally = new EvaluationTally(new EvaluationBlocks(4, 4, 4), nodes: 4, classes: 2);
        tally.AddReference(0, refBmu, refLabels, i => i % 2 == 1);
        tally.AddEvaluated(1, bmu, second, new float[4], labels, 0, (_, _) => true);
        // Node 0 learns label 0 (sample 1), node 1 nothing (sample 2 unlabelled) → nearest labelled node (0 or 2: 0 at distance 1,
        // 2 at sqrt 2) → 0; node 2 learns 1 (sample 3); node 3 → nearest labelled node 2 → 1.
        var expected = MapMetrics.FillEmptyNodes([0, -1, 1, -1], prototypes, 2);
        Assert.Equal(expected, tally.Classifier(true, prototypes, 2)!);
        var q = tally.Quality(true, true, 1, prototypes, 2);
        Assert.Equal(MapMetrics.Purity(bmu, labels, expected), q.Accuracy);
        // Purity still labels nodes from every reference sample: node 0's majority of {1, 0} is 0 (tie to the smaller).
        Assert.Equal([0, 1, 1, -1], tally.LabelMap(true)!);
        var copy = EvaluationTally.Read(tally.ToBytes());
        Assert.Equal(q, copy.Quality(true, true, 1, prototypes, 2));
    }

    [Fact]
    public void Refuses_a_block_twice_an_incomplete_quality_and_foreign_bytes()
    {
        var blocks = new EvaluationBlocks(2, 2, 2);
        var a = new EvaluationTally(blocks, 2, 1);
        a.AddReference(0, [0, 1], [0, 0]);
        Assert.Throws<InvalidOperationException>(() => a.AddReference(0, [0, 1], [0, 0]));
        Assert.Throws<ArgumentException>(() => a.AddReference(1, [0], [0]));   // wrong length
        Assert.Contains("missing blocks 1", Assert.Throws<InvalidOperationException>(() => a.Quality(true, true, 1)).Message);
        var b = new EvaluationTally(blocks, 2, 1);
        b.AddReference(0, [1, 1], [0, 0]);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => a.Merge(b)).Message);
        Assert.Throws<ArgumentException>(() => a.Merge(new EvaluationTally(blocks, 3, 1)));
        var bytes = a.ToBytes();
        Assert.Throws<InvalidDataException>(() => EvaluationTally.Read(bytes[..^1]));
        Assert.Throws<InvalidDataException>(() => EvaluationTally.Read([.. bytes, 0]));
        bytes[0] ^= 0xFF;
        Assert.Throws<InvalidDataException>(() => EvaluationTally.Read(bytes));
    }

    [Theory]
    [InlineData("conv", 2)]
    [InlineData("conv", 3)]
    [InlineData("mlp", 4)]
    public void Ranks_tallying_their_own_blocks_merge_into_one_process_bit_for_bit(string encoder, int world)
    {
        var config = StepEngineSpec.Small with
        {
            Encoder = Config.KebabEnum.Parse<Config.EncoderKind>("encoder", encoder), Hidden = [48, 24], MicroBatch = 4, BatchSize = 16,
        };
        using var reference = InMemoryDataset.Blobs(70, seed: 1);
        using var evaluated = InMemoryDataset.Blobs(37, seed: 2);
        using var whole = new StepEngine(config, StepEngineSpec.Shape, CPU, config.BatchSize);
        using (var scope = NewDisposeScope())
            whole.Som.SetPrototypes(randn(new long[] { whole.Som.Nodes, whole.Som.Dim }, generator: new Generator(3)) * 0.5f);
        var state = whole.Model.Export();

        var one = MapEvaluator.Tally(whole, reference, evaluated, config.BatchSize, null, CancellationToken.None);
        var plan = one.Blocks;
        EvaluationTally? merged = null;
        for (var rank = 0; rank < world; rank++)
        {
            // Each rank has its own engine (its own thread count) holding the same model bits, as a worker's replica does.
            using var e = new StepEngine(config with { Threads = 1 }, StepEngineSpec.Shape, CPU, config.BatchSize);
            e.Model.Import(state.ToDictionary(t => t.Name));
            var part = EvaluationTally.Read(MapEvaluator.Tally(e, reference, evaluated, plan, plan.Owned(rank, world), CancellationToken.None).ToBytes());
            if (merged is null) merged = part;
            else merged.Merge(part);
        }
        Assert.True(merged!.Complete);
        Assert.Equal(one.ToBytes(), merged.ToBytes());
        Assert.Equal(one.Quality(true, true, 144), merged.Quality(true, true, 144));

        // The per-sample path agrees: the same BMUs and labels, QE and reconstruction within rounding of the summation order.
        var placedRef = MapEvaluator.Place(whole, reference, config.BatchSize, null, CancellationToken.None);
        var placed = MapEvaluator.Place(whole, evaluated, config.BatchSize, null, CancellationToken.None);
        var labelMap = MapMetrics.LabelMap(placedRef.Bmu, placedRef.Labels, whole.Som.Nodes, 4);
        var q = one.Quality(true, true, StepEngineSpec.Shape.Pixels);
        Assert.Equal(labelMap, one.LabelMap(true));
        Assert.Equal(MapMetrics.Purity(placed.Bmu, placed.Labels, labelMap), q.Purity);
        Assert.Equal(MapMetrics.Nmi(placed.Bmu, placed.Labels), q.Nmi!.Value, 12);
        Assert.Equal(MapMetrics.TopographicError(placed.Bmu, placed.Second, whole.Som.Grid), q.Te);
        Assert.Equal(MapMetrics.QuantizationError(placed.Distance), q.Qe, 9);
        Assert.Equal(placed.ReconstructionMse, q.ReconMse, 12);
    }
}
