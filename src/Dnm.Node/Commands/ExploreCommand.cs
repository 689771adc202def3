using System.CommandLine;
using Dnm.Core.Data;
using Dnm.Core.Explore;
using Dnm.Node.Progress;
using Dnm.Node.Serving;

namespace Dnm.Node.Commands;

/// <summary>
/// `dnm explore`: places a dataset on a checkpoint's map once, then serves the explorer page with the placement API
/// (or, with --static, writes the page as files that open without a server).
/// </summary>
public static class ExploreCommand
{
    public static Command Create(CliContext context)
    {
        var flags = new ServerFlags();
        var dataset = new Option<string>("--dataset") { Description = "mnist, fashion-mnist, idx:<images>[,<labels>] or folder:<dir> [default: the checkpoint's dataset]" };
        var split = new Option<string>("--split") { Description = "Split to place (idx: and folder: datasets have only one)", DefaultValueFactory = _ => "test" };
        var dataDir = new Option<string>("--data-dir") { Description = "Dataset cache [default: $DNM_DATA, else ~/.cache/dnm]" };
        var limit = new Option<int?>("--limit") { Description = "Place only the first N samples of the split [default: all]" };
        var staticDir = new Option<string>("--static") { Description = "Write the explorer as files that open from disk without a server, then exit", HelpName = "dir" };
        var staticMembers = new Option<int>("--static-members") { Description = "With --static: the nearest samples per node kept in the files", DefaultValueFactory = _ => 48 };
        split.AcceptOnlyFromAmong("train", "test");
        var command = new Command("explore", "Browse a checkpoint's map in a web browser: prototypes, U-matrix, hit map, labels, QE, component planes, each node's images, and where a new image lands");
        flags.AddTo(command);
        foreach (var option in new Option[] { dataset, split, dataDir, limit, staticDir, staticMembers }) command.Add(option);
        command.SetAction(parsed =>
        {
            if (parsed.GetValue(limit) is <= 0 and var bad) throw new Core.Config.ConfigException($"limit must be positive, got {bad}");
            var members = parsed.GetValue(staticMembers);
            if (members is < 1 or > MapServer.MaxPageSize)
                throw new Core.Config.ConfigException($"static-members must be 1..{MapServer.MaxPageSize}, got {members}");
            var options = flags.Options(parsed);
            var target = parsed.GetValue(staticDir);
            var state = new ServerState();
            // A server listens at once (/readyz says what it is loading); a static export has no server.
            var server = target is null ? ServerFlags.Start(options, state, explorerPage: true, context.Error) : null;
            MapPlacer? placer = null;
            IImageDataset? data = null;
            try
            {
                placer = flags.LoadPlacer(parsed, options, context.Error);
                var name = parsed.GetValue(dataset) ?? placer.Map.Config.Dataset;
                state.Report($"opening {name}");
                var fetch = new FetchProgressWriter(context.Error, live: false, context.Clock);
                data = placer.Map.OpenSplit(name, parsed.GetValue(split)!, parsed.GetValue(dataDir), parsed.GetValue(limit), fetch);
                state.Report($"placing {data.Count} samples of {data.Name}");
                context.Error.WriteLine($"placing {data.Count} samples of {data.Name} on the map...");
                var started = context.Clock.GetTimestamp();
                var explorer = MapExplorer.Place(placer, data, context.Cancel);
                context.Error.WriteLine($"placed {data.Count} samples in {context.Clock.GetElapsedTime(started).TotalSeconds:0.0} s");
                if (target is not null)
                {
                    var files = ExplorerSite.WriteStatic(explorer, target, members);
                    context.Out.WriteLine($"wrote the explorer to {Path.GetFullPath(target)} ({files} files); open {Path.Combine(Path.GetFullPath(target), ExplorerAssets.Index)} in a browser");
                    return CliErrors.Ok;
                }
                state.Publish(explorer);
                var url = server!.Urls.FirstOrDefault()?.Replace("0.0.0.0", "localhost", StringComparison.Ordinal).Replace("[::]", "localhost", StringComparison.Ordinal);
                context.Out.WriteLine($"exploring the {placer.Rows}x{placer.Cols} map with {data.Count} samples of {data.Name}: open {url}/ (Ctrl+C stops)");
                server.WaitAsync(context.Cancel).GetAwaiter().GetResult();
                return CliErrors.Ok;
            }
            finally
            {
                server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                data?.Dispose();
                placer?.Dispose();
            }
        });
        return command;
    }
}
