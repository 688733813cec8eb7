#!/usr/bin/env escript
%% The BEAM port pool the issue's reference figure was measured on, run in
%% the same benchmark as arbord: the seed system's design, a pool process
%% holding Erlang ports of the worker (4-byte length-prefixed frames), each
%% client a process that checks a port out (the pool connects the port to
%% it), sends one request, receives the reply and checks the port back in.
%%
%% Usage: beam_pool.escript WORKER N SOCKET
%% Starts N ports of WORKER, waits for their init replies, listens on the
%% Unix socket SOCKET and prints "ready". A connection to SOCKET is served
%% by a process of its own, one request frame at a time: it checks a port
%% out, passes the frame to it unchanged, checks the port back in and
%% sends the reply back unchanged (as tools/bench/relay.c does, with
%% clients outside the VM). Per line read on stdin:
%%   run CLIENTS WARMUP_MS SECS_MS REQUEST_JSON
%% runs CLIENTS client processes in a closed loop for WARMUP_MS, then
%% SECS_MS measured, and prints "COUNT P50_NS P99_NS P999_NS CPU_TICKS":
%% the calls that began in the measured window and their latency quantiles
%% (checkout to reply), and the VM's CPU time (utime + stime, clock ticks)
%% over the window. End of input ends it, and the ports' workers with it.
-mode(compile).

main([Worker, N, Socket]) ->
    Ports = [start_port(Worker, I) || I <- lists:seq(1, list_to_integer(N))],
    Pool = spawn_link(fun() -> pool_init(Ports) end),
    file:delete(Socket),
    {ok, L} = gen_tcp:listen(0, [{ifaddr, {local, Socket}}, binary,
        {packet, 4}, {active, false}, {backlog, 4096}]),
    spawn_link(fun() -> accept(L, Pool) end),
    io:format("ready~n"),
    serve(Pool);
main(_) ->
    io:format(standard_error, "usage: beam_pool.escript WORKER N SOCKET~n",
        []),
    halt(2).

accept(L, Pool) ->
    {ok, S} = gen_tcp:accept(L),
    C = spawn(fun() -> receive go -> conn(S, Pool) end end),
    ok = gen_tcp:controlling_process(S, C),
    C ! go,
    accept(L, Pool).

conn(S, Pool) ->
    ok = inet:setopts(S, [{active, true}]),
    conn_loop(S, Pool).

conn_loop(S, Pool) ->
    receive
        {tcp, S, Frame} ->
            gen_tcp:send(S, call(Pool, Frame)),
            conn_loop(S, Pool);
        {tcp_closed, S} -> ok;
        {tcp_error, S, _} -> ok
    end.

start_port(Worker, I) ->
    P = open_port({spawn_executable, Worker}, [{packet, 4}, binary, use_stdio]),
    Ping = iolist_to_binary(io_lib:format(
        "{\"id\":1,\"command\":\"ping\",\"args\":{\"initialization\":true,"
        "\"worker_id\":\"beam/~b\"}}", [I])),
    port_command(P, Ping),
    receive
        {P, {data, _}} -> P
    after 10000 ->
        io:format(standard_error, "port ~b: no init reply~n", [I]),
        halt(1)
    end.

serve(Pool) ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(1);
        Line ->
            [<<"run">>, C, W, S, Req] =
                fields(string:trim(iolist_to_binary(Line)), 4),
            run(Pool, binary_to_integer(C), binary_to_integer(W),
                binary_to_integer(S), Req),
            serve(Pool)
    end.

%% The first K space-separated fields of Bin, then the rest as one.
fields(Bin, 0) -> [Bin];
fields(Bin, K) ->
    [F, Rest] = binary:split(Bin, <<" ">>),
    [F | fields(Rest, K - 1)].

%% One run: every client's latencies, merged and sorted for the quantiles.
run(Pool, Clients, WarmupMs, SecsMs, Req) ->
    Open = erlang:monotonic_time(nanosecond) + WarmupMs * 1000000,
    Close = Open + SecsMs * 1000000,
    Self = self(),
    [spawn_link(fun() -> Self ! {done, client(Pool, Req, Open, Close, [])} end)
     || _ <- lists:seq(1, Clients)],
    sleep_until(Open),
    Cpu0 = cpu_ticks(),
    sleep_until(Close),
    Cpu = cpu_ticks() - Cpu0,
    Lat = lists:sort(lists:append(collect(Clients, []))),
    Count = length(Lat),
    io:format("~b ~b ~b ~b ~b~n", [Count, quantile(Lat, Count, 0.5),
        quantile(Lat, Count, 0.99), quantile(Lat, Count, 0.999), Cpu]).

sleep_until(T) ->
    Ms = (T - erlang:monotonic_time(nanosecond)) div 1000000,
    receive after max(0, Ms) -> ok end.

%% utime + stime of this OS process, from /proc/self/stat.
cpu_ticks() ->
    {ok, Stat} = file:read_file("/proc/self/stat"),
    [_, After] = binary:split(Stat, <<") ">>),
    F = binary:split(After, <<" ">>, [global]),
    binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F)).

collect(0, Acc) -> Acc;
collect(K, Acc) -> receive {done, L} -> collect(K - 1, [L | Acc]) end.

quantile(_, 0, _) -> 0;
quantile(Lat, Count, Q) ->
    lists:nth(min(Count, max(1, ceil(Q * Count))), Lat).

client(Pool, Req, Open, Close, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    if
        T0 >= Close -> Acc;
        true ->
            call(Pool, Req),
            T1 = erlang:monotonic_time(nanosecond),
            Acc1 = if T0 >= Open -> [T1 - T0 | Acc]; true -> Acc end,
            client(Pool, Req, Open, Close, Acc1)
    end.

%% One call on a port checked out of the pool: the reply.
call(Pool, Req) ->
    Pool ! {checkout, self()},
    Port = receive {port, P} -> P end,
    port_command(Port, Req),
    Reply = receive {Port, {data, R}} -> R end,
    erlang:port_connect(Port, Pool),	% a port dies with its owner
    unlink(Port),
    Pool ! {checkin, Port},
    Reply.

%% The pool: idle ports, and clients waiting for one, first come first
%% served. A port checked out is connected to its client, so the reply
%% goes straight to it; the client connects it back before its checkin.
pool_init(Ports) ->
    [erlang:port_connect(P, self()) || P <- Ports],
    pool(Ports, queue:new()).

pool(Idle, Waiting) ->
    receive
        {checkout, From} when Idle =/= [] ->
            [P | Rest] = Idle,
            give(P, From),
            pool(Rest, Waiting);
        {checkout, From} ->
            pool(Idle, queue:in(From, Waiting));
        {checkin, P} ->
            case queue:out(Waiting) of
                {{value, From}, W} -> give(P, From), pool(Idle, W);
                {empty, _} -> pool([P | Idle], Waiting)
            end
    end.

give(P, To) ->
    erlang:port_connect(P, To),
    To ! {port, P}.
