using System.Runtime.InteropServices;
using Dnm.Node;

using var cancel = new CancellationTokenSource();

// Ctrl+C stops after the current step so the run can be resumed from its last checkpoint;
// a second Ctrl+C is not intercepted and ends the process at once.
Console.CancelKeyPress += (_, e) =>
{
    if (cancel.IsCancellationRequested) return;
    e.Cancel = true;
    Console.Error.WriteLine("\nstopping after the current step (press Ctrl+C again to abort at once)...");
    cancel.Cancel();
};

// Kubernetes stops a pod with SIGTERM: like Ctrl+C (the run stops after its step, checkpointed, and leaves the
// cluster), but a requested stop, so the process exits 0 once that is done.
var terminated = 0;
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    Volatile.Write(ref terminated, 1);
    cancel.Cancel();
});

return DnmCli.Run(args, CliContext.ForConsole(cancel.Token) with { Terminated = () => Volatile.Read(ref terminated) == 1 });
