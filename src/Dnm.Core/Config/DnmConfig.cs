using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Dnm.Core.Data;
using Dnm.Core.Som;

namespace Dnm.Core.Config;

/// <summary>
/// The one configuration record of a run. Every key matches a `dnm train` flag (kebab-case in JSON).
/// It is logged in full at start-up, written to the run directory and saved in every checkpoint.
/// </summary>
public sealed record DnmConfig
{
    // ---- data ----
    /// <summary>mnist | fashion-mnist | idx:&lt;images&gt;[,&lt;labels&gt;] | folder:&lt;dir&gt; | shards:&lt;dir | pattern | URL pattern&gt;.</summary>
    public string Dataset { get; init; } = "mnist";
    /// <summary>The held-out set to evaluate on, when not the dataset's own test split (any dataset spec). Null: the dataset's test split.</summary>
    public string? TestDataset { get; init; }
    /// <summary>
    /// Hold out this fraction of the training split for evaluation, chosen by a hash of each sample's key (stable when the
    /// dataset grows). Null: none. For datasets without a test split of their own.
    /// </summary>
    public double? TestFraction { get; init; }
    /// <summary>Dataset cache; null means $DNM_DATA, else ~/.cache/dnm.</summary>
    public string? DataDir { get; init; }
    /// <summary>Train on a seeded random subset of N training samples (quick runs; the seed is <see cref="Seed"/>). Null: all.</summary>
    public int? Limit { get; init; }
    /// <summary>Folder datasets are resized to this square size (COIL-20: 64).</summary>
    public int ImageSize { get; init; } = 64;
    /// <summary>Folder datasets are converted to this many channels (1 = grayscale, 3 = RGB).</summary>
    public int ImageChannels { get; init; } = 1;
    /// <summary>Folder datasets: fail on an unreadable image, or skip it and count it.</summary>
    public BadFilePolicy OnBadImage { get; init; } = BadFilePolicy.Fail;
    /// <summary>Folder and shard images that declare more pixels than this are refused before they are decoded (decompression bombs).</summary>
    public long MaxImagePixels { get; init; } = ImageDecoder.DefaultMaxPixels;

    // ---- model (the default: DEC's and DPSOM's fully connected autoencoder; the paper's conv 10-8-5 is configs/dnm-paper.json) ----
    /// <summary>
    /// mlp (default: fully connected, DEC's and DPSOM's: <see cref="Hidden"/>, with a small <see cref="Latent"/>) | conv
    /// (the paper's convolutional autoencoder: <see cref="Channels"/>, <see cref="Kernel"/>). On MNIST the mlp's maps are
    /// purer (docs/BENCHMARKS.md, "Ordered maps").
    /// </summary>
    public EncoderKind Encoder { get; init; } = EncoderKind.Mlp;
    /// <summary>conv: the encoder's conv channels (the decoder mirrors them).</summary>
    public ValueList<int> Channels { get; init; } = [10, 8, 5];
    /// <summary>conv: the kernel size (odd, 'same' padding).</summary>
    public int Kernel { get; init; } = 5;
    /// <summary>mlp: the encoder's hidden layer widths (the decoder mirrors them).</summary>
    public ValueList<int> Hidden { get; init; } = [500, 500, 2000];
    /// <summary>The latent (embedding) dimension. Unset: 10 for the mlp encoder (DEC's and DPSOM's), 100 for conv (the paper's).</summary>
    [JsonIgnore] public int Latent { get => LatentSetting ?? (Encoder == EncoderKind.Conv ? 100 : 10); init => LatentSetting = value; }
    /// <summary>The latent key as given; null (the default): see <see cref="Latent"/>.</summary>
    [JsonPropertyName("latent")] public int? LatentSetting { get; init; }
    /// <summary>none | sigmoid (the authors' code puts a sigmoid on z).</summary>
    public LatentActivation LatentActivation { get; init; } = LatentActivation.None;

    /// <summary>
    /// A model exported by `dnm export` (safetensors) that a new run starts from instead of the seed's initial values: see
    /// <see cref="InitParts"/>. Null: none. Ignored on resume (the checkpoint holds the state).
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>weights | prototypes | both: what <see cref="InitFrom"/> provides.</summary>
    public InitParts InitParts { get; init; } = InitParts.Both;

    // ---- map ----
    /// <summary>Lattice size RxC; the paper uses 20x30.</summary>
    public string Map { get; init; } = "20x30";
    /// <summary>rect (4 neighbours) | hex (6 neighbours, pointy-top cells in odd-r offset rows); see <see cref="MapGrid"/>.</summary>
    public LatticeKind Lattice { get; init; } = LatticeKind.Hex;
    /// <summary>The map's edges wrap: the top row neighbours the bottom one and the left column the right one. A hex torus needs an even row count.</summary>
    public bool Toroidal { get; init; }

    // ---- optimisation ----
    public int Epochs { get; init; } = 8;
    /// <summary>Autoencoder-only epochs before the SOM is fitted.</summary>
    public int PretrainEpochs { get; init; } = 25;
    /// <summary>SOM pre-training iterations on the pre-trained embeddings (the paper: 10 000).</summary>
    public int SomIterations { get; init; } = 10_000;
    /// <summary>
    /// Global batch size (summed over all workers). Unset (no flag, config key or checkpoint gives it): 256, or for a
    /// training set of fewer than 64·256 samples the size <see cref="BatchSizeFor"/> gives it, once the run knows the set
    /// (<see cref="ForTrainingSet"/>); the run's config.json and checkpoints then hold the number.
    /// </summary>
    [JsonIgnore] public int BatchSize { get => BatchSizeSetting ?? DefaultBatchSize; init => BatchSizeSetting = value; }
    /// <summary>The batch-size key as given; null (the default): fitted to the training set. <see cref="BatchSize"/> is the value.</summary>
    [JsonPropertyName("batch-size")] public int? BatchSizeSetting { get; init; }
    /// <summary>
    /// Most samples in one micro-batch, the unit of work whose result does not depend on where it runs (0: automatic, at
    /// most 64; see <see cref="Training.MicroBatches"/>). A batch is cut into a power of two of them and ranks take whole
    /// micro-batches, so a world larger than that count leaves ranks idle: lower it to spread a small batch further.
    /// </summary>
    public int MicroBatch { get; init; }
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>
    /// Adam's learning rate rises linearly from 0 to <see cref="LearningRate"/> over this many first steps (0: full rate
    /// from the first). Adam's first steps move every weight by about the full rate whatever its gradient, which in the
    /// wide dense layers around z shifts the whole latent space at once and can hold the autoencoder on its "mean image"
    /// plateau for hundreds of steps (docs/algorithm.md, "Short runs").
    /// </summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>Weight γ of the reconstruction term γ‖X − X̂‖² (squared error summed over a sample's pixels, averaged over the batch).</summary>
    public double Gamma { get; init; } = 1.0;
    /// <summary>Weight of the L2 penalty on the encoder weights θ.</summary>
    public double Beta { get; init; } = 1e-5;
    /// <summary>fixed (P computed without gradient, DEC-style, default) | authors (gradient flows through P, no 1/f).</summary>
    public TargetDistribution Target { get; init; } = TargetDistribution.Fixed;
    /// <summary>Degrees of freedom ν of the Student-t kernel of Q: (1 + d/ν)^-(ν+1)/2. The paper (and DEC) use 1.</summary>
    public double Dof { get; init; } = 1;
    /// <summary>
    /// Weight λ of the smoothing term λ‖z_i − ẑ_i‖² of the joint phase (0: off). ẑ_i is sample i's pre-trained
    /// embedding averaged over its neighbourhood graph (<see cref="SmoothNeighbours"/>, <see cref="SmoothSteps"/>);
    /// the SOM is then pre-trained on ẑ. See docs/algorithm.md. Unset: <see cref="SmoothWeightFor"/> the training set, once
    /// the run knows it (<see cref="ForTrainingSet"/>): 10 up to 200,000 samples, 0 above; 0 until then.
    /// </summary>
    [JsonIgnore] public double SmoothWeight { get => SmoothWeightSetting ?? 0; init => SmoothWeightSetting = value; }
    /// <summary>The smooth-weight key as given; null (the default): fitted to the training set. <see cref="SmoothWeight"/> is the value.</summary>
    [JsonPropertyName("smooth-weight")] public double? SmoothWeightSetting { get; init; }
    /// <summary>k of the latent k-nearest-neighbour graph behind the smoothed targets.</summary>
    public int SmoothNeighbours { get; init; } = 10;
    /// <summary>Rounds of neighbourhood averaging that make the smoothed targets.</summary>
    public int SmoothSteps { get; init; } = 32;
    public ulong Seed { get; init; } = 0;
    /// <summary>Training images are rotated by a random angle in ±this many degrees (0: off); see <see cref="Data.ImageAugmenter"/>.</summary>
    public double AugmentRotation { get; init; } = 0;
    /// <summary>Training images are shifted by a random fraction in ±this of their width and height (0: off).</summary>
    public double AugmentShift { get; init; } = 0;

    // ---- semi-supervised training and the denoising autoencoder (docs/algorithm.md) ----
    /// <summary>
    /// Train with the labels of this fraction of the training samples, chosen by the SHA-256 of (seed, key) (stable for
    /// any world size and when the dataset grows); the rest train unlabelled. Null: see <see cref="Labelled"/>.
    /// </summary>
    public double? LabelledFraction { get; init; }
    /// <summary>A file of sample keys, one a line: train with the labels of those samples only. Null: see <see cref="LabelledFraction"/>.</summary>
    public string? Labelled { get; init; }
    /// <summary>
    /// Weight of the supervised term (cross-entropy of the map's class prediction) for the labelled samples; 0: labels only label
    /// the nodes. 30 by measurement (docs/BENCHMARKS.md, "Semi-supervised training (8x8)"): at 1 the term changed nothing
    /// measurable; at 30 it adds up to 4.4 points of accuracy with many labels and costs nothing measurable with few.
    /// </summary>
    public double LabelWeight { get; init; } = 30;
    /// <summary>none | gaussian:σ | masking:p: corrupt the autoencoder's input in training (the clean image stays its target).</summary>
    public NoiseSpec Denoise { get; init; } = NoiseSpec.None;
    /// <summary>Whether some training samples' labels take part in training (<see cref="LabelledFraction"/> or <see cref="Labelled"/>).</summary>
    [JsonIgnore] public bool SemiSupervised => LabelledFraction is not null || Labelled is not null;

    // ---- SOM schedule: sigma(n) = max(sigma0 exp(-n/alpha), sigma-floor), eta(n) = eta0 exp(-n/alpha) ----
    /// <summary>
    /// The schedule's decay constant. Unset: <see cref="SomIterations"/> / 5, so that σ and η decay over SOM pre-training
    /// whatever its length (2000 for the paper's 10,000 iterations); 2000 when there is no SOM pre-training.
    /// </summary>
    [JsonIgnore] public double Alpha { get => AlphaSetting ?? (SomIterations > 0 ? SomIterations / 5.0 : PaperAlpha); init => AlphaSetting = value; }
    /// <summary>The alpha key as given; null (the default): som-iterations / 5. <see cref="Alpha"/> is the value.</summary>
    [JsonPropertyName("alpha")] public double? AlphaSetting { get; init; }
    private const double PaperAlpha = 2000;
    /// <summary>Initial neighbourhood width in lattice units. Null: max(R, C) / 3 (10 for the paper's 20x30).</summary>
    public double? Sigma0 { get; init; }
    public double Eta0 { get; init; } = 0.3;
    /// <summary>
    /// Lower bound of σ. 0.6 (default) keeps each node pulling its neighbours (weight e^−1.4 ≈ 0.25), which keeps the map
    /// ordered: on the 20x30 MNIST map the topographic error fell from 0.40 (0.3, square lattice) to 0.07 (0.6, hex) for
    /// purity within half a point (docs/BENCHMARKS.md, "Ordered maps"). 0.3 makes the joint phase close to k-means.
    /// </summary>
    public double SigmaFloor { get; init; } = 0.6;
    /// <summary>
    /// What n counts in the joint phase: continue (SOM pre-training's iterations, then joint steps: σ and η
    /// keep decaying from where pre-training left them) | step (joint steps from 0: σ restarts at σ0) |
    /// epoch (the paper's pseudo-code: σ stays near σ0 for the whole run).
    /// </summary>
    public ScheduleCounter ScheduleCounter { get; init; } = ScheduleCounter.Continue;
    /// <summary>
    /// batch: w += eta (S - H w)/max(H, 1) (default; the batch-SOM rule (1-eta) w + eta S/H wherever H ≥ 1) |
    /// minibatch: w += eta (S - H w)/b. The batch rule converges in far fewer steps (a node moves a fraction
    /// eta towards its neighbourhood mean, not eta·H/b); see docs/algorithm.md.
    /// </summary>
    public SomRule SomRule { get; init; } = SomRule.Batch;

    // ---- run ----
    /// <summary>auto | cpu | cuda | cuda:N.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Torch intra-op threads; 0 = one per core.</summary>
    public int Threads { get; init; }
    /// <summary>Run directory.</summary>
    public string Out { get; init; } = "runs/dnm";
    /// <summary>Write a checkpoint every this many steps (see <see cref="Training.CheckpointPolicy"/>).</summary>
    public int CheckpointEvery { get; init; } = 500;
    /// <summary>Also write one when this many minutes passed since the last (0: off); never twice for one step.</summary>
    public double CheckpointMinutes { get; init; } = 10;
    /// <summary>Evaluate (metrics.jsonl) every this many joint epochs; 0 = only at the end.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>
    /// Periodic evaluations label the nodes from the first this-many training samples and evaluate the first this-many
    /// test samples; the final one uses both splits whole, so its purity reads higher (better node labels).
    /// </summary>
    public int EvalLimit { get; init; } = 10_000;

    /// <summary>The allowed words of the keys that take one of a few (the CLI lists them in --help): the enums' own.</summary>
    public static class Choices
    {
        public static readonly string[] Encoder = KebabEnum.Names<EncoderKind>();
        public static readonly string[] LatentActivation = KebabEnum.Names<LatentActivation>();
        public static readonly string[] InitParts = KebabEnum.Names<InitParts>();
        public static readonly string[] Target = KebabEnum.Names<TargetDistribution>();
        public static readonly string[] ScheduleCounter = KebabEnum.Names<ScheduleCounter>();
        public static readonly string[] SomRule = KebabEnum.Names<SomRule>();
        public static readonly string[] OnBadImage = KebabEnum.Names<BadFilePolicy>();
    }

    [JsonIgnore] public int MapRows => ParseMap(Map).Rows;
    [JsonIgnore] public int MapCols => ParseMap(Map).Cols;
    /// <summary>The run's first prototypes come from <see cref="InitFrom"/> rather than from the data.</summary>
    [JsonIgnore] public bool InitsPrototypes => InitFrom is not null && InitParts is InitParts.Prototypes or InitParts.Both;
    [JsonIgnore] public double Sigma0Resolved => Sigma0 ?? Math.Max(MapRows, MapCols) / 3.0;

    /// <summary>The batch size of a run whose config does not choose one: 256, the paper's model's throughput sweet spot on a CPU.</summary>
    public const int DefaultBatchSize = 256;
    /// <summary>A small training set's default batch gives an epoch at least this many steps (<see cref="BatchSizeFor"/>).</summary>
    public const int MinStepsPerEpoch = 64;
    /// <summary>The smallest batch <see cref="BatchSizeFor"/> picks: below it the soft counts f of one batch get noisy.</summary>
    public const int MinDefaultBatchSize = 32;

    /// <summary>Whether a flag, a config file or a checkpoint gave the batch size (otherwise it follows the training set).</summary>
    [JsonIgnore] public bool BatchSizeChosen => BatchSizeSetting is not null;
    /// <summary>Whether a flag, a config file or a checkpoint gave the smoothing weight (otherwise it follows the training set).</summary>
    [JsonIgnore] public bool SmoothWeightChosen => SmoothWeightSetting is not null;

    /// <summary>
    /// Keys whose default has changed, with the value a checkpoint written before the key existed ran with (the square
    /// lattice, the conv encoder and no smoothing came before those keys did). Checkpoints and exported models fill them in
    /// where their config lacks them (<see cref="FromRecordedJson"/>), so an old one resumes and evaluates as the run it was.
    /// </summary>
    public static readonly IReadOnlyList<(string Key, string Json)> EarlierDefaults = [("encoder", "\"conv\""), ("lattice", "\"rect\""), ("smooth-weight", "0")];

    /// <summary>The smoothing weight of a run whose config does not choose one, up to <see cref="MaxDefaultSmoothedSamples"/>.</summary>
    public const double DefaultSmoothWeight = 10;
    /// <summary>
    /// The largest training set smoothed by default. The smoothed targets' exact neighbour graph costs time that grows with
    /// the square of the set (and a target a sample): past this a run must ask for it. The same bound as SOM pre-training's
    /// fitted subset (Training.SomFitSet.MaxSamples).
    /// </summary>
    public const int MaxDefaultSmoothedSamples = 200_000;

    /// <summary>
    /// The default smoothing weight for <paramref name="samples"/> training samples: <see cref="DefaultSmoothWeight"/> up to
    /// <see cref="MaxDefaultSmoothedSamples"/>, 0 above. It is what made the 20x30 MNIST map reach purity 0.97
    /// (docs/BENCHMARKS.md, "Ordered maps").
    /// </summary>
    public static double SmoothWeightFor(int samples) => samples <= MaxDefaultSmoothedSamples ? DefaultSmoothWeight : 0;

    /// <summary>
    /// The default batch for <paramref name="samples"/> training samples: 256, halved while an epoch would have fewer than
    /// <see cref="MinStepsPerEpoch"/> steps, down to <see cref="MinDefaultBatchSize"/>. A small set's epoch at 256 is a
    /// handful of Adam steps (4,000 samples: 16), too few for the autoencoder to learn anything before the SOM is
    /// fitted; the same samples in batches of 32 are 125 steps. 16,384 samples and more keep 256.
    /// </summary>
    public static int BatchSizeFor(int samples)
    {
        var b = DefaultBatchSize;
        while (b > MinDefaultBatchSize && (long)b * MinStepsPerEpoch > samples) b /= 2;
        return b;
    }

    /// <summary>
    /// This config for a training set of <paramref name="samples"/>: an unchosen batch size becomes <see cref="BatchSizeFor"/>
    /// the set and an unchosen smoothing weight <see cref="SmoothWeightFor"/> it (both chosen from then on: they are what
    /// config.json, checkpoints and a cluster's workers see).
    /// </summary>
    public DnmConfig ForTrainingSet(int samples)
    {
        var sized = this;
        if (!BatchSizeChosen) sized = sized with { BatchSize = BatchSizeFor(samples) };
        if (!SmoothWeightChosen) sized = sized with { SmoothWeight = SmoothWeightFor(samples) };
        return sized;
    }

    public static (int Rows, int Cols) ParseMap(string map)
    {
        var parts = map.ToLowerInvariant().Split('x');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var r)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var c)
            || r <= 0 || c <= 0)
            throw new ConfigException($"map '{map}' is not RxC with positive integers (for example 20x30)");
        // In long: 65536x65536 is 2^32 nodes, which an int product wraps to 0.
        if ((long)r * c > Limits.MapNodes)
            throw new ConfigException($"map '{map}' has {(long)r * c} nodes, more than the limit of {Limits.MapNodes}: use a smaller map");
        return (r, c);
    }

    /// <summary>
    /// Upper bounds that keep a config (or a checkpoint's) from asking for memory no machine has. Each lies far above any
    /// useful run; what a hostile or mistyped value would allocate is bounded by them before anything is allocated.
    /// </summary>
    public static class Limits
    {
        /// <summary>Nodes of the lattice (R·C); the paper's map has 600.</summary>
        public const long MapNodes = 1_000_000;
        /// <summary>Floats of the prototypes W (R·C·latent): 1 GiB.</summary>
        public const long PrototypeFloats = 1L << 28;
        /// <summary>Parameters θ and φ of the autoencoder for the dataset's images: 1 GiB (Adam's moments add twice that).</summary>
        public const long ModelParameters = 1L << 28;
        public const int Latent = 65_536;
        /// <summary>An mlp layer's width (hidden).</summary>
        public const int LayerWidth = 65_536;
        /// <summary>A conv layer's channels (channels).</summary>
        public const int ConvChannels = 4_096;
        /// <summary>Entries of channels or hidden.</summary>
        public const int Layers = 32;
        public const int Kernel = 31;
        /// <summary>Side of the square folder images (image-size), and of any image a checkpoint declares.</summary>
        public const int ImageSide = 4_096;
        public const int BatchSize = 1 << 20;
        public const int SmoothNeighbours = 1_024;
        public const int Threads = 4_096;
    }

    /// <summary>Every problem with the configuration, phrased so that the user can fix it; each names its key.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        try
        {
            var (rows, cols) = ParseMap(Map);
            if ((long)rows * cols * Math.Max(1, Latent) > Limits.PrototypeFloats)
                p.Add($"map {Map} with latent {Latent} needs {(long)rows * cols * Latent} prototype floats, more than the limit of {Limits.PrototypeFloats}: use a smaller map or latent");
            if (MapGrid.Problem(rows, cols, Lattice, Toroidal) is { } lattice) p.Add(lattice);
        }
        catch (ConfigException e) { p.Add(e.Message); }
        Defined(p, "lattice", Lattice);
        Defined(p, "encoder", Encoder);
        Widths(p, "channels", Channels, Limits.ConvChannels);
        Widths(p, "hidden", Hidden, Limits.LayerWidth);
        if (Kernel <= 0 || Kernel % 2 == 0 || Kernel > Limits.Kernel) p.Add($"kernel must be a positive odd number ('same' padding) of at most {Limits.Kernel}, got {Kernel}");
        Whole(p, "latent", Latent, 1, Limits.Latent);
        Defined(p, "latent-activation", LatentActivation);
        if (InitFrom is not null && string.IsNullOrWhiteSpace(InitFrom)) p.Add("init-from must name a file exported by `dnm export`");
        Defined(p, "init-parts", InitParts);
        if (TestFraction is { } f) Number(p, "test-fraction", f, f is > 0 and < 1, "a fraction strictly between 0 and 1");
        if (TestFraction is not null && TestDataset is not null) p.Add("test-fraction and test-dataset both name a test set: give one of them");
        if (TestDataset is { Length: 0 }) p.Add("test-dataset must name a dataset spec");
        if (MaxImagePixels <= 0) p.Add($"max-image-pixels must be positive, got {MaxImagePixels}");
        Whole(p, "epochs", Epochs, 0, int.MaxValue);
        Whole(p, "pretrain-epochs", PretrainEpochs, 0, int.MaxValue);
        Whole(p, "som-iterations", SomIterations, 0, int.MaxValue);
        Whole(p, "batch-size", BatchSize, 1, Limits.BatchSize);
        Whole(p, "warmup-steps", WarmupSteps, 0, int.MaxValue);
        if (MicroBatch < 0) p.Add($"micro-batch must be >= 0 (0: automatic), got {MicroBatch}");
        if (Limit is <= 0) p.Add($"limit must be positive, got {Limit}");
        Number(p, "learning-rate", LearningRate, LearningRate > 0, "a positive number");
        Number(p, "gamma", Gamma, Gamma >= 0, "a number >= 0");
        Number(p, "beta", Beta, Beta >= 0, "a number >= 0");
        Number(p, "augment-rotation", AugmentRotation, AugmentRotation is >= 0 and <= 180, "in [0, 180] degrees");
        Number(p, "augment-shift", AugmentShift, AugmentShift is >= 0 and < 1, "a fraction in [0, 1)");
        if (LabelledFraction is { } lf) Number(p, "labelled-fraction", lf, lf is > 0 and <= 1, "a fraction in (0, 1]");
        if (LabelledFraction is not null && Labelled is not null) p.Add("labelled-fraction and labelled both choose the labelled samples: give one of them");
        if (Labelled is { } labelled && string.IsNullOrWhiteSpace(labelled)) p.Add("labelled must name a file of sample keys, one a line");
        Number(p, "label-weight", LabelWeight, LabelWeight >= 0, "a number >= 0");
        if (Denoise is null) p.Add("denoise must be none, gaussian:σ or masking:p");
        else if (Denoise.Problem("denoise") is { } noise) p.Add(noise);
        Defined(p, "target", Target);
        Number(p, "smooth-weight", SmoothWeight, SmoothWeight >= 0, "a number >= 0");
        Whole(p, "smooth-neighbours", SmoothNeighbours, 1, Limits.SmoothNeighbours);
        Whole(p, "smooth-steps", SmoothSteps, 0, int.MaxValue);
        Number(p, "dof", Dof, Dof > 0, "a positive number");
        Number(p, "alpha", Alpha, Alpha > 0, "a positive number");
        if (Sigma0 is { } sigma0) Number(p, "sigma0", sigma0, sigma0 > 0, "a positive number");
        Number(p, "eta0", Eta0, Eta0 is > 0 and <= 1, "in (0, 1]");
        Number(p, "sigma-floor", SigmaFloor, SigmaFloor >= 0, "a number >= 0");
        Defined(p, "schedule-counter", ScheduleCounter);
        Defined(p, "som-rule", SomRule);
        Whole(p, "image-size", ImageSize, 1, Limits.ImageSide);
        if (ImageChannels is not (1 or 3)) p.Add($"image-channels must be 1 or 3, got {ImageChannels}");
        Defined(p, "on-bad-image", OnBadImage);
        Whole(p, "threads", Threads, 0, Limits.Threads);
        if (CheckpointEvery <= 0) p.Add($"checkpoint-every must be positive, got {CheckpointEvery}");
        Number(p, "checkpoint-minutes", CheckpointMinutes, CheckpointMinutes >= 0, "a number >= 0 (0: off)");
        if (EvalEvery < 0) p.Add($"eval-every must be >= 0, got {EvalEvery}");
        if (EvalLimit <= 0) p.Add($"eval-limit must be positive, got {EvalLimit}");
        if (string.IsNullOrWhiteSpace(Out)) p.Add("out must name a directory");
        try { DeviceSpec.Parse(Device); } catch (ConfigException e) { p.Add(e.Message); }
        return p;
    }

    /// <summary>
    /// A float key: <paramref name="inRange"/> must hold and the value must be finite. NaN fails every comparison but
    /// `!=`, so a check written as `x &lt; 0` would let it through; infinity passes `&gt; 0`.
    /// </summary>
    private static void Number(List<string> problems, string key, double value, bool inRange, string rule)
    {
        if (!inRange || !double.IsFinite(value))
            problems.Add($"{key} must be {rule}, got {value.ToString(CultureInfo.InvariantCulture)}");
    }

    private static void Whole(List<string> problems, string key, int value, int min, int max)
    {
        if (value < min || value > max)
            problems.Add(max == int.MaxValue ? $"{key} must be >= {min}, got {value}" : $"{key} must be in [{min}, {max}], got {value}");
    }

    private static void Widths(List<string> problems, string key, ValueList<int>? widths, int max)
    {
        if (widths is null || widths.Count == 0 || widths.Any(w => w <= 0)) problems.Add($"{key} must be a non-empty list of positive integers");
        else if (widths.Count > Limits.Layers) problems.Add($"{key} has {widths.Count} layers, more than the limit of {Limits.Layers}");
        else if (widths.Any(w => w > max)) problems.Add($"{key} widths must be at most {max}, got {widths}");
    }

    /// <summary>An enum value built in code (not parsed) may lie outside its set.</summary>
    private static void Defined<T>(List<string> problems, string key, T value) where T : struct, Enum
    {
        if (!Enum.IsDefined(value)) problems.Add(KebabEnum.Problem<T>(key, value.ToString()));
    }

    /// <summary>Throws <see cref="ConfigException"/> naming the first problem.</summary>
    public DnmConfig Validated()
    {
        var p = Problems();
        if (p.Count > 0) throw new ConfigException(string.Join("; ", p));
        return this;
    }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters = { new KebabEnumConverterFactory() },
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// A config a run recorded (an exported model's metadata; checkpoints' headers go through
    /// <see cref="FillEarlierDefaults"/>): keys it lacks take <see cref="EarlierDefaults"/>, the values it ran with.
    /// </summary>
    public static DnmConfig FromRecordedJson(string json, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"config {source} is not valid: {e.Message}");
        }
        if (node is JsonObject config) FillEarlierDefaults(config);
        return FromJson(node?.ToJsonString() ?? json, source);
    }

    /// <summary>Adds each of <see cref="EarlierDefaults"/> that a recorded config lacks.</summary>
    public static void FillEarlierDefaults(JsonObject config)
    {
        foreach (var (key, value) in EarlierDefaults)
            if (!config.ContainsKey(key)) config[key] = JsonNode.Parse(value);
    }

    public static DnmConfig FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<DnmConfig>(json, Json)
                   ?? throw new ConfigException($"config {source} is empty");
        }
        catch (JsonException e) when (e.InnerException is null && e.Path is { Length: > 2 } path && e.Message.StartsWith("must be one of", StringComparison.Ordinal))
        {
            // An unknown word for an enum key (KebabEnumConverterFactory): one line naming the key and the words.
            throw new ConfigException($"config {source} is not valid: {path[2..]} {e.Message}");
        }
        catch (JsonException e)
        {
            throw new ConfigException($"config {source} is not valid: {e.Message} (keys are the `dnm train` flag names, e.g. \"batch-size\")");
        }
    }
}

/// <summary>A bad flag or configuration value. The CLI prints it as one `error:` line and exits with code 2.</summary>
public sealed class ConfigException(string message) : Exception(message);
