using System.CommandLine;
using Dnm.Core.Explore;
using Dnm.Node.Serving;

namespace Dnm.Node.Commands;

/// <summary>`dnm serve`: the placement service of a checkpoint (POST /v1/place, GET /v1/map, /metrics, /healthz, /readyz).</summary>
public static class ServeCommand
{
    public static Command Create(CliContext context)
    {
        var flags = new ServerFlags();
        var command = new Command("serve", "Serve a checkpoint's map over HTTP: POST /v1/place places PNG/JPEG images, GET /v1/map describes the lattice");
        flags.AddTo(command);
        command.SetAction(parsed =>
        {
            var options = flags.Options(parsed);
            var state = new ServerState();
            // Listen first: /healthz answers and /readyz says "loading" while the checkpoint loads.
            var server = ServerFlags.Start(options, state, explorerPage: false, context.Error);
            MapPlacer? placer = null;
            try
            {
                placer = flags.LoadPlacer(parsed, options, context.Error);
                state.Publish(new MapExplorer(placer, data: null, members: null));
                context.Out.WriteLine($"serving the {placer.Rows}x{placer.Cols} map on {string.Join(", ", server.Urls)} (POST /v1/place, GET /v1/map; Ctrl+C stops)");
                server.WaitAsync(context.Cancel).GetAwaiter().GetResult();
            }
            finally
            {
                // The server stops (and its requests end) before the models they use are freed.
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
                placer?.Dispose();
            }
            return CliErrors.Ok;
        });
        return command;
    }
}
