using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Som;

namespace Dnm.Node.Commands;

/// <summary>A configuration and the keys that a config file or a flag set explicitly (the rest are defaults).</summary>
public sealed record ResolvedConfig(DnmConfig Config, IReadOnlySet<string> GivenKeys);

/// <summary>
/// One `dnm train` flag per <see cref="DnmConfig"/> key, named exactly like the key in a config file.
/// Precedence: the record's defaults, then the config file, then the flags given on the command line.
/// </summary>
public sealed class ConfigFlags
{
    private static readonly DnmConfig Defaults = new();
    private readonly List<IFlag> flags;

    public ConfigFlags() => flags =
    [
        // data
        Flag<string>("dataset", "mnist, fashion-mnist, idx:<images>[,<labels>], folder:<dir> or shards:<dir | pattern | URL pattern>", c => c.Dataset, (c, v) => c with { Dataset = v }, helpName: "spec"),
        Flag<string>("test-dataset", "Evaluate on this dataset instead of the dataset's own test split", c => c.TestDataset, (c, v) => c with { TestDataset = v }, "the dataset's test split", "spec"),
        Flag<double>("test-fraction", "Hold out this fraction of the training split for evaluation, chosen by a hash of each sample's key", c => c.TestFraction, (c, v) => c with { TestFraction = v }, "none", "F"),
        Flag<string>("data-dir", "Dataset cache", c => c.DataDir, (c, v) => c with { DataDir = v }, "$DNM_DATA, else ~/.cache/dnm", "dir"),
        Flag<int>("limit", "Train on a seeded random subset of N training samples (the seed is --seed)", c => c.Limit, (c, v) => c with { Limit = v }, "all"),
        Flag<int>("image-size", "Folder datasets and shards without a manifest: resize images to this square size", c => c.ImageSize, (c, v) => c with { ImageSize = v }),
        Flag<int>("image-channels", "Folder datasets and shards without a manifest: 1 (grayscale) or 3 (RGB)", c => c.ImageChannels, (c, v) => c with { ImageChannels = v }),
        Choice<BadFilePolicy>("on-bad-image", "Folder and shard datasets: fail on an unreadable image or sample, or skip it and count it", c => c.OnBadImage, (c, v) => c with { OnBadImage = v }),
        Flag<long>("max-image-pixels", "Folder and shard images declaring more pixels are refused before decoding", c => c.MaxImagePixels, (c, v) => c with { MaxImagePixels = v }),
        // model
        Choice<EncoderKind>("encoder", "Autoencoder: mlp (fully connected, DEC's and DPSOM's) or conv (the paper's; configs/dnm-paper.json has its whole set-up)", c => c.Encoder, (c, v) => c with { Encoder = v }),
        Flag<string>("channels", "conv: encoder channels, comma-separated", c => string.Join(',', c.Channels), (c, v) => c with { Channels = ParseWidths("channels", v, "10,8,5") }, helpName: "c1,c2,..."),
        Flag<int>("kernel", "conv: kernel size (odd)", c => c.Kernel, (c, v) => c with { Kernel = v }),
        Flag<string>("hidden", "mlp: encoder hidden layer widths, comma-separated", c => string.Join(',', c.Hidden), (c, v) => c with { Hidden = ParseWidths("hidden", v, "500,500,2000") }, helpName: "h1,h2,..."),
        Flag<int>("latent", "Latent (embedding) dimension", c => c.Latent, (c, v) => c with { Latent = v }, "10 for mlp, 100 for conv"),
        Choice<LatentActivation>("latent-activation", "Activation on the embedding z", c => c.LatentActivation, (c, v) => c with { LatentActivation = v }),
        Flag<string>("init-from", "Start a new run from a model exported by `dnm export` (safetensors): its weights, prototypes or both (--init-parts); the model flags must match the file's", c => c.InitFrom, (c, v) => c with { InitFrom = v }, "none", "model.safetensors"),
        Choice<InitParts>("init-parts", "What --init-from provides: the autoencoder's weights, the SOM prototypes (SOM pre-training starts from them), or both", c => c.InitParts, (c, v) => c with { InitParts = v }),
        // map
        Flag<string>("map", "Lattice size RxC", c => c.Map, (c, v) => c with { Map = v }, helpName: "RxC"),
        Choice<LatticeKind>("lattice", "Node arrangement: rect (4 neighbours) or hex (6 neighbours; pointy-top cells, odd rows shifted half a cell right)", c => c.Lattice, (c, v) => c with { Lattice = v }),
        Flag<bool>("toroidal", "Wrap the map's edges: top row next to bottom row, left column next to right column (hex needs an even row count)", c => c.Toroidal, (c, v) => c with { Toroidal = v }, "false"),
        // optimisation
        Flag<int>("epochs", "Joint-training epochs", c => c.Epochs, (c, v) => c with { Epochs = v }),
        Flag<int>("pretrain-epochs", "Autoencoder-only epochs before the SOM is fitted", c => c.PretrainEpochs, (c, v) => c with { PretrainEpochs = v }),
        Flag<int>("som-iterations", "SOM pre-training iterations on the pre-trained embeddings", c => c.SomIterations, (c, v) => c with { SomIterations = v }),
        Flag<int>("batch-size", "Global batch size", c => c.BatchSize, (c, v) => c with { BatchSize = v }, "256; under 16384 training samples halved to give an epoch 64 steps, at least 32"),
        Flag<int>("micro-batch", "Most samples in one micro-batch, the unit of work a rank computes (the result is the same for any number of workers); 0 = automatic (at most 64)", c => c.MicroBatch, (c, v) => c with { MicroBatch = v }),
        Flag<double>("learning-rate", "Adam learning rate", c => c.LearningRate, (c, v) => c with { LearningRate = v }),
        Flag<int>("warmup-steps", "Adam's learning rate rises linearly from 0 over this many first steps; 0 = off", c => c.WarmupSteps, (c, v) => c with { WarmupSteps = v }),
        Flag<double>("gamma", "Weight of the reconstruction loss", c => c.Gamma, (c, v) => c with { Gamma = v }),
        Flag<double>("beta", "Weight of the L2 penalty on the encoder weights", c => c.Beta, (c, v) => c with { Beta = v }),
        Choice<TargetDistribution>("target", "Target distribution P: fixed (no gradient) or authors (gradient through P)", c => c.Target, (c, v) => c with { Target = v }),
        Flag<double>("augment-rotation", "Rotate each training image by a random angle within +-this many degrees; 0 = off", c => c.AugmentRotation, (c, v) => c with { AugmentRotation = v }),
        Flag<double>("augment-shift", "Shift each training image by a random fraction within +-this of its size; 0 = off", c => c.AugmentShift, (c, v) => c with { AugmentShift = v }),
        Flag<double>("dof", "Degrees of freedom of the Student-t kernel of Q (1 = the paper's)", c => c.Dof, (c, v) => c with { Dof = v }),
        Flag<double>("smooth-weight", "Weight of the pull towards graph-smoothed embeddings in the joint phase; 0 = off", c => c.SmoothWeight, (c, v) => c with { SmoothWeight = v }, "10 up to 200000 training samples, 0 above"),
        Flag<int>("smooth-neighbours", "Nearest neighbours per sample in the graph behind --smooth-weight", c => c.SmoothNeighbours, (c, v) => c with { SmoothNeighbours = v }),
        Flag<int>("smooth-steps", "Rounds of neighbourhood averaging behind --smooth-weight", c => c.SmoothSteps, (c, v) => c with { SmoothSteps = v }),
        Flag<double>("labelled-fraction", "Semi-supervised: train with the labels of this fraction of the training samples, chosen by a seeded hash of each key", c => c.LabelledFraction, (c, v) => c with { LabelledFraction = v }, "none (unsupervised)", "F"),
        Flag<string>("labelled", "Semi-supervised: train with the labels of the samples whose keys this file lists, one a line", c => c.Labelled, (c, v) => c with { Labelled = v }, "none (unsupervised)", "file"),
        Flag<double>("label-weight", "Weight of the supervised term for labelled samples; 0 = labels only name the nodes", c => c.LabelWeight, (c, v) => c with { LabelWeight = v }),
        Flag<string>("denoise", "Denoising autoencoder: corrupt training inputs with gaussian:SIGMA or masking:P (the clean image is the target); none = off", c => c.Denoise, (c, v) => c with { Denoise = NoiseSpec.Parse("denoise", v) }, helpName: "none|gaussian:S|masking:P"),
        Flag<ulong>("seed", "Random seed (model init and data order)", c => c.Seed, (c, v) => c with { Seed = v }),
        // SOM schedule
        Flag<double>("alpha", "Decay constant of sigma and eta", c => c.Alpha, (c, v) => c with { Alpha = v }, "som-iterations / 5 (2000 for 10000)"),
        Flag<double>("sigma0", "Initial neighbourhood width in lattice units", c => c.Sigma0, (c, v) => c with { Sigma0 = v }, "max(R, C) / 3"),
        Flag<double>("eta0", "Initial SOM learning rate, in (0, 1]", c => c.Eta0, (c, v) => c with { Eta0 = v }),
        Flag<double>("sigma-floor", "Lower bound of sigma", c => c.SigmaFloor, (c, v) => c with { SigmaFloor = v }),
        Choice<ScheduleCounter>("schedule-counter", "What the schedule's n counts in the joint phase", c => c.ScheduleCounter, (c, v) => c with { ScheduleCounter = v }),
        Choice<SomRule>("som-rule", "Kohonen update rule", c => c.SomRule, (c, v) => c with { SomRule = v }),
        // run
        Flag<string>("device", "auto, cpu, cuda or cuda:N", c => c.Device, (c, v) => c with { Device = v }),
        Flag<int>("threads", "Torch intra-op threads; 0 = one per core", c => c.Threads, (c, v) => c with { Threads = v }),
        Flag<string>("out", "Run directory", c => c.Out, (c, v) => c with { Out = v }, "runs/<dataset>-<yyyyMMdd-HHmmss>", "dir"),
        Flag<int>("checkpoint-every", "Write a checkpoint every this many steps (and after SOM pre-training)", c => c.CheckpointEvery, (c, v) => c with { CheckpointEvery = v }),
        Flag<double>("checkpoint-minutes", "Also write a checkpoint when this many minutes passed since the last; 0 = off", c => c.CheckpointMinutes, (c, v) => c with { CheckpointMinutes = v }),
        Flag<int>("eval-every", "Evaluate every this many joint epochs; 0 = only at the end", c => c.EvalEvery, (c, v) => c with { EvalEvery = v }),
        Flag<int>("eval-limit", "Training samples that label the nodes, and test samples evaluated, in periodic evaluations (the final one uses all)", c => c.EvalLimit, (c, v) => c with { EvalLimit = v }),
    ];

    public IEnumerable<Option> Options => flags.Select(f => f.Option);

    /// <summary>The config keys (and flag names without "--") this class knows.</summary>
    public IEnumerable<string> Keys => flags.Select(f => f.Key);

    /// <summary>Defaults, overridden by the config file, overridden by the flags on the command line.</summary>
    public ResolvedConfig Resolve(ParseResult parsed, string? configFile)
    {
        var given = new HashSet<string>(StringComparer.Ordinal);
        var config = configFile is null ? new DnmConfig() : LoadFile(configFile, given);
        foreach (var flag in flags)
        {
            if (!flag.IsGiven(parsed)) continue;
            config = flag.Apply(config, parsed);
            given.Add(flag.Key);
        }
        return new ResolvedConfig(config, given);
    }

    private static DnmConfig LoadFile(string path, HashSet<string> given)
    {
        if (!File.Exists(path)) throw new ConfigException($"config file {path} does not exist");
        var json = File.ReadAllText(path);
        var config = DnmConfig.FromJson(json, path);
        // FromJson has accepted the file, so it is an object of known keys: remember which ones it sets.
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        foreach (var property in doc.RootElement.EnumerateObject()) given.Add(property.Name);
        return config;
    }

    private static int[] ParseWidths(string key, string text, string example)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var widths = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] <= 0)
                throw new ConfigException($"{key} '{text}' is not a comma-separated list of positive integers (for example {example})");
        return widths;
    }

    private static TypedFlag<T> Flag<T>(string key, string description, Func<DnmConfig, object?> current,
        Func<DnmConfig, T, DnmConfig> set, string? defaultText = null, string? helpName = null, string[]? allowed = null)
    {
        var shown = defaultText ?? Convert.ToString(current(Defaults), CultureInfo.InvariantCulture);
        var option = new Option<T>("--" + key) { Description = $"{description} [default: {shown}]" };
        if (helpName is not null) option.HelpName = helpName;
        if (allowed is not null) option.AcceptOnlyFromAmong(allowed);
        return new TypedFlag<T>(key, option, set);
    }

    /// <summary>A key with a closed set of words: the flag accepts exactly the enum's kebab-case words and parses them once, here.</summary>
    private static TypedFlag<string> Choice<T>(string key, string description, Func<DnmConfig, T> current, Func<DnmConfig, T, DnmConfig> set)
        where T : struct, Enum =>
        Flag<string>(key, description, c => KebabEnum.Name(current(c)), (c, v) => set(c, KebabEnum.Parse<T>(key, v)), allowed: KebabEnum.Names<T>());

    private interface IFlag
    {
        string Key { get; }
        Option Option { get; }
        bool IsGiven(ParseResult parsed);
        DnmConfig Apply(DnmConfig config, ParseResult parsed);
    }

    private sealed record TypedFlag<T>(string Key, Option<T> Typed, Func<DnmConfig, T, DnmConfig> Set) : IFlag
    {
        public Option Option => Typed;
        // No DefaultValueFactory: a flag that is absent has no result, so it cannot mask the config file. A bool option
        // (--toroidal) has an implicit result of false when absent: that one is not given either.
        public bool IsGiven(ParseResult parsed) => parsed.GetResult(Typed) is { Implicit: false };
        public DnmConfig Apply(DnmConfig config, ParseResult parsed) => Set(config, parsed.GetValue(Typed)!);
    }
}
