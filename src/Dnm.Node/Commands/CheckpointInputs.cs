using System.CommandLine;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Runtime;
using Dnm.Core.Training;
using Dnm.Node.Progress;

namespace Dnm.Node.Commands;

/// <summary>A trained map and the data to use it on, opened for `dnm eval` and `dnm map`.</summary>
public sealed class MapSession(TrainedMap map, IImageDataset data, IImageDataset? reference) : IDisposable
{
    public TrainedMap Map { get; } = map;
    /// <summary>The split asked for.</summary>
    public IImageDataset Data { get; } = data;
    /// <summary>The training split that names the nodes; null when the data has no labels.</summary>
    public IImageDataset? Reference { get; } = reference;

    public void Dispose()
    {
        Reference?.Dispose();
        Data.Dispose();
        Map.Dispose();
    }
}

/// <summary>The flags `dnm eval` and `dnm map` share: which checkpoint, which data, which device.</summary>
public sealed class CheckpointInputs
{
    private readonly Option<string> checkpoint = new("--checkpoint") { Description = "Checkpoint file (e.g. <run>/checkpoints/final.ckpt)", Required = true, HelpName = "path" };
    private readonly Option<string> dataset = new("--dataset") { Description = "mnist, fashion-mnist, idx:<images>[,<labels>] or folder:<dir> [default: the checkpoint's dataset]" };
    private readonly Option<string> split = new("--split") { Description = "Split to use (idx: and folder: datasets have only one)", DefaultValueFactory = _ => "test" };
    private readonly Option<string> dataDir = new("--data-dir") { Description = "Dataset cache [default: $DNM_DATA, else ~/.cache/dnm]" };
    private readonly Option<int?> limit = new("--limit") { Description = "Use only the first N samples of the split [default: all]" };
    private readonly Option<string> device = new("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };

    public CheckpointInputs() => split.AcceptOnlyFromAmong("train", "test");

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { checkpoint, dataset, split, dataDir, limit, device }) command.Add(option);
    }

    /// <summary>
    /// Loads the checkpoint and opens the data. Node labels come from the train split of the same
    /// dataset, limited like the training run when it is the run's own dataset, so that evaluating a
    /// run's final checkpoint reproduces its final-metrics.json. Messages go to <paramref name="log"/>.
    /// </summary>
    public MapSession Open(ParseResult parsed, CliContext context, TextWriter log)
    {
        var spec = DeviceSpec.Parse(parsed.GetValue(device)!);
        if (parsed.GetValue(limit) is <= 0 and var bad) throw new ConfigException($"limit must be positive, got {bad}");
        var path = parsed.GetValue(checkpoint)!;
        // Read and verify the file before starting torch: a bad checkpoint is reported at once.
        var ckpt = Checkpoint.Load(path);
        var (torchDevice, runtime) = TorchRuntime.Initialize(spec, 0, log.WriteLine);
        log.WriteLine($"checkpoint {path}: {ckpt.Config.Map} map, {ckpt.Shape} images, trained on {ckpt.Config.Dataset} to global step {ckpt.State.GlobalStep}; device {runtime.Device}");

        var map = TrainedMap.From(ckpt, path, torchDevice);
        var fetch = new FetchProgressWriter(log, live: false, context.Clock);
        IImageDataset? data = null;
        try
        {
            var name = parsed.GetValue(dataset) ?? ckpt.Config.Dataset;
            var dir = parsed.GetValue(dataDir);
            data = map.OpenSplit(name, parsed.GetValue(split)!, dir, parsed.GetValue(limit), fetch);
            var reference = data.HasLabels ? map.OpenReference(name, dir, fetch) : null;
            log.WriteLine($"data: {data.Name} ({data.Count} samples){(reference is null ? ", no labels" : $", node labels from {reference.Name} ({reference.Count} samples)")}");
            return new MapSession(map, data, reference);
        }
        catch
        {
            data?.Dispose();
            map.Dispose();
            throw;
        }
    }
}
