using System.CommandLine;
using Dnm.Core.Data;
using Dnm.Node.Progress;

namespace Dnm.Node.Commands;

/// <summary>`dnm data fetch mnist`: download and verify MNIST ahead of training (e.g. in an init container).</summary>
public static class DataCommand
{
    public static Command Create(CliContext context)
    {
        var name = new Argument<string>("dataset") { Description = "The dataset to fetch (only mnist is downloadable)" };
        name.AcceptOnlyFromAmong("mnist");
        var dataDir = new Option<string>("--data-dir") { Description = "Dataset cache [default: $DNM_DATA, else ~/.cache/dnm]" };
        var fetch = new Command("fetch", "Download a dataset into the cache and verify it (SHA-256)") { name, dataDir };
        fetch.SetAction(parsed =>
        {
            var root = parsed.GetValue(dataDir) ?? DatasetCatalog.DefaultDataDir();
            var progress = new FetchProgressWriter(context.Out, context.Interactive, context.Clock);
            MnistFiles files;
            try
            {
                files = new MnistStore().EnsureAsync(root, progress, context.Cancel).GetAwaiter().GetResult();
            }
            finally
            {
                progress.Finish();
            }
            context.Out.WriteLine($"MNIST is ready in {files.Directory}:");
            foreach (var file in new[] { files.TrainImages, files.TrainLabels, files.TestImages, files.TestLabels })
                context.Out.WriteLine($"  {Path.GetFileName(file),-26}{ProgressText.Bytes(new FileInfo(file).Length)}");
            return CliErrors.Ok;
        });
        return new Command("data", "Manage datasets") { fetch };
    }
}
