using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

/// <summary>
/// SOM pre-training from embeddings made elsewhere (a cluster's workers, every N-th block each): the replica that fits the
/// map reads no image, and ends with the same bits as one process that embeds every block itself.
/// </summary>
public sealed class SomPretrainingSpec
{
    private static readonly DnmConfig Base = StepEngineSpec.Small with { Map = "3x3", BatchSize = 24, SomIterations = 30, EvalEvery = 0 };

    public static TheoryData<string> Variants => ["plain", "smoothed", "semi-supervised"];

    private static DnmConfig Variant(string name) => name switch
    {
        "smoothed" => Base with { SmoothWeight = 1, SmoothNeighbours = 4, SmoothSteps = 2 },
        "semi-supervised" => Base with { LabelledFraction = 0.5 },
        _ => Base,
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void A_replica_handed_the_workers_embeddings_reads_no_image_and_fits_the_single_process_map(string variant)
    {
        using var dir = new ScratchDirectory();
        var config = Variant(variant);
        using var data = InMemoryDataset.Blobs(96, 3);

        // One process: embeds every block itself.
        var (alone, aloneEngine) = Session(config with { Out = dir.File("alone") }, data, out _);
        var aloneState = alone.PretrainSom(new RunState(), embeddings: null, CancellationToken.None);

        // A cluster's coordinator: its replica is handed the blocks that two workers (replicas of their own) embedded.
        var counted = new CountingDataset(data);
        var (coordinator, coordinatorEngine) = Session(config with { Out = dir.File("coordinator") }, counted, out _);
        var plan = coordinator.SomEmbedding!;
        Assert.Equal(4, plan.Count); // 96 samples in blocks of 24
        var gather = new EmbeddingGather(plan);
        for (var rank = 0; rank < 2; rank++)
        {
            using var worker = new StepEngine(config, data.Shape, CPU, config.BatchSize, LabelledSamples.Classes(config, data));
            var owned = Enumerable.Range(0, plan.Count).Where(b => b % 2 == rank);
            Embeddings.Blocks(worker, SomFitSet.For(config, data), plan, owned, (b, rows) => gather.Add(b, EmbeddingGather.Encode(rows)), CancellationToken.None);
        }
        var readsBefore = counted.ImagesRead;
        var coordinatorState = coordinator.PretrainSom(new RunState(), gather, CancellationToken.None);

        Assert.Equal(0, counted.ImagesRead - readsBefore);
        Assert.Equal(aloneState, coordinatorState);
        Assert.Equal(EngineState.Checksum(aloneEngine), EngineState.Checksum(coordinatorEngine));
        Assert.Equal(alone.Targets?.Values, coordinator.Targets?.Values);
        if (variant == "semi-supervised")
        {
            var counts = coordinatorEngine.Classes!.Counts;
            Assert.Equal(aloneEngine.Classes!.Counts, counts);
            Assert.Equal(LabelledSamples.For(config, data)!.Count, counts.Sum()); // every labelled sample (about half, by key hash) placed once
        }
        aloneEngine.Dispose();
        coordinatorEngine.Dispose();
    }

    [Fact]
    public void A_replica_that_resumed_its_smoothed_targets_and_places_no_labelled_sample_needs_no_embeddings()
    {
        using var dir = new ScratchDirectory();
        var config = Variant("smoothed") with { Out = dir.File("run") };
        using var data = InMemoryDataset.Blobs(48, 5);
        var (first, engine) = Session(config, data, out var run);
        Assert.NotNull(first.SomEmbedding);
        first.PretrainSom(new RunState(), embeddings: null, CancellationToken.None);
        var checkpoint = first.ToCheckpoint(new RunState { Phase = TrainingPhase.SomPretrain, PhaseStep = 3 });
        var resumed = new RunSession(config, run, engine, data, data, new Silent());
        resumed.Resume(checkpoint, "step-3.ckpt");
        Assert.Null(resumed.SomEmbedding);
        engine.Dispose();
    }

    [Fact]
    public void An_embedding_block_of_the_wrong_size_twice_or_out_of_range_is_refused_naming_it()
    {
        var gather = new EmbeddingGather(new EmbeddingBlocks(Samples: 10, Dim: 2, BlockSize: 4));
        Assert.Equal(3, gather.Plan.Count);
        Assert.Contains("holds 12 bytes, not the 16", Assert.Throws<InvalidDataException>(() => gather.Add(2, new byte[12])).Message);
        gather.Add(2, EmbeddingGather.Encode([1f, 2f, 3f, 4f]));
        Assert.Contains("arrived twice", Assert.Throws<InvalidDataException>(() => gather.Add(2, new byte[16])).Message);
        Assert.Contains("does not exist", Assert.Throws<InvalidDataException>(() => gather.Add(3, new byte[0])).Message);
        Assert.Equal([0, 1], gather.Missing());
        Assert.Contains("2 of 3 embedding blocks are missing", Assert.Throws<InvalidOperationException>(() => gather.ToTensor(CPU)).Message);
    }

    private static (RunSession Session, StepEngine Engine) Session(DnmConfig config, IImageDataset data, out RunDirectory run)
    {
        var engine = new StepEngine(config, data.Shape, CPU, config.BatchSize, LabelledSamples.Classes(config, data));
        run = new RunDirectory(config.Out);
        return (new RunSession(config, run, engine, data, data, new Silent()), engine);
    }

    private sealed class Silent : ITrainingObserver;

    /// <summary>The dataset, counting the images read from it.</summary>
    private sealed class CountingDataset(IImageDataset inner) : IImageDataset
    {
        public int ImagesRead;
        public string Name => inner.Name;
        public int Count => inner.Count;
        public ImageShape Shape => inner.Shape;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public int Label(int index) => inner.Label(index);
        public string Key(int index) => inner.Key(index);

        public void CopyImage(int index, Span<float> destination)
        {
            Interlocked.Increment(ref ImagesRead);
            inner.CopyImage(index, destination);
        }

        public void Dispose() { }
    }
}
